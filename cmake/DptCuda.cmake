# SPDX-License-Identifier: MIT
# Finds what the CUDA backend needs (nvcc, cudart, cuBLAS/cuBLASLt, cuDNN >= 8.0, NCCL >= 2.14) and
# sets DPT_HAVE_CUDA. With DPT_CUDA=ON a missing piece is fatal and named; with AUTO it is reported and
# the build stays CPU-only. Defines the imported targets dpt::cudnn and dpt::nccl (neither ships a
# CMake package).
include_guard(GLOBAL)
include(CheckLanguage)

# dpt_cuda_missing(part...): what is missing or too old, in parts that are joined.
function(dpt_cuda_missing)
  string(CONCAT what ${ARGN})
  if(DPT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DPT_CUDA=ON but ${what} (set CUDAToolkit_ROOT / CMAKE_PREFIX_PATH)")
  endif()
  message(STATUS "dptrain: DPT_CUDA=AUTO and ${what}: CPU-only build")
endfunction()

# The oldest releases whose API the backend uses:
# - cuDNN 8.0: CUDNN_FMA_MATH (kernels/cuda/conv.cpp pins FP32 math with it); the legacy
#   convolution calls (cudnnGetConvolution*Algorithm_v7, cudnnConvolution*) are in 8.x and 9.x.
# - NCCL 2.14: non-blocking communicators (ncclCommInitRankConfig with ncclConfig_t::blocking = 0,
#   NCCL_CONFIG_INITIALIZER, ncclInProgress) and ncclCommFinalize; ncclGetLastError and
#   ncclRemoteError are from 2.13.
set(DPT_CUDNN_MIN_VERSION 8.0)
set(DPT_NCCL_MIN_VERSION 2.14)

include(DptHeaderVersion)

set(DPT_HAVE_CUDA 0)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  dpt_cuda_missing("no CUDA compiler (nvcc) was found")
else()
  find_package(CUDAToolkit)
  find_path(DPT_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(DPT_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR})
  find_path(DPT_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(DPT_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(NOT CUDAToolkit_FOUND)
    dpt_cuda_missing("the CUDA toolkit libraries were not found")
  elseif(NOT DPT_CUDNN_INCLUDE_DIR OR NOT DPT_CUDNN_LIBRARY)
    dpt_cuda_missing("cuDNN (cudnn.h, libcudnn) was not found")
  elseif(NOT DPT_NCCL_INCLUDE_DIR OR NOT DPT_NCCL_LIBRARY)
    dpt_cuda_missing("NCCL (nccl.h, libnccl) was not found")
  else()
    # cuDNN 8 and 9 keep the version in cudnn_version.h, NCCL in nccl.h.
    dpt_header_version(DPT_CUDNN_VERSION "${DPT_CUDNN_INCLUDE_DIR}/cudnn_version.h" CUDNN
                       CUDNN_PATCHLEVEL)
    dpt_header_version(DPT_NCCL_VERSION "${DPT_NCCL_INCLUDE_DIR}/nccl.h" NCCL NCCL_PATCH)
    if(NOT DPT_CUDNN_VERSION)
      dpt_cuda_missing("cuDNN at ${DPT_CUDNN_INCLUDE_DIR} has no cudnn_version.h with "
                       "CUDNN_MAJOR/MINOR/PATCHLEVEL (cuDNN older than 8?); dptrain needs cuDNN "
                       ">= ${DPT_CUDNN_MIN_VERSION}")
    elseif(DPT_CUDNN_VERSION VERSION_LESS DPT_CUDNN_MIN_VERSION)
      dpt_cuda_missing("cuDNN ${DPT_CUDNN_VERSION} (${DPT_CUDNN_INCLUDE_DIR}/cudnn_version.h) is "
                       "older than ${DPT_CUDNN_MIN_VERSION}, the oldest with the API dptrain uses")
    elseif(NOT DPT_NCCL_VERSION)
      dpt_cuda_missing("${DPT_NCCL_INCLUDE_DIR}/nccl.h has no NCCL_MAJOR/MINOR/PATCH; dptrain "
                       "needs NCCL >= ${DPT_NCCL_MIN_VERSION}")
    elseif(DPT_NCCL_VERSION VERSION_LESS DPT_NCCL_MIN_VERSION)
      dpt_cuda_missing("NCCL ${DPT_NCCL_VERSION} (${DPT_NCCL_INCLUDE_DIR}/nccl.h) is older than "
                       "${DPT_NCCL_MIN_VERSION}, the oldest with non-blocking communicators "
                       "(ncclCommInitRankConfig) and ncclCommFinalize")
    else()
      set(DPT_HAVE_CUDA 1)
    endif()
  endif()
endif()

if(DPT_HAVE_CUDA)
  # Ampere, Hopper (H100/H200) as real code; PTX of the newest for later GPUs. Override with
  # -DCMAKE_CUDA_ARCHITECTURES=... (e.g. "native" on a GPU machine).
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80-real 90)
  endif()
  enable_language(CUDA)
  # CMake 3.25 knows no C++20 flag for nvcc, yet a target's CUDA dialect defaults to its
  # CXX_STANDARD (20): "requires the language dialect CUDA20 ... does not support this". nvcc 12+
  # accepts -std=c++20.
  if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  find_package(CUDAToolkit REQUIRED)
  add_library(dpt::cudnn UNKNOWN IMPORTED)
  set_target_properties(dpt::cudnn PROPERTIES IMPORTED_LOCATION ${DPT_CUDNN_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${DPT_CUDNN_INCLUDE_DIR})
  add_library(dpt::nccl UNKNOWN IMPORTED)
  set_target_properties(dpt::nccl PROPERTIES IMPORTED_LOCATION ${DPT_NCCL_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${DPT_NCCL_INCLUDE_DIR})
  find_program(DPT_CCACHE_FOR_CUDA ccache)
  if(DPT_CCACHE_FOR_CUDA)
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${DPT_CCACHE_FOR_CUDA})
  endif()
  message(STATUS "dptrain: CUDA ${CUDAToolkit_VERSION} backend (architectures "
                 "${CMAKE_CUDA_ARCHITECTURES}), cuDNN ${DPT_CUDNN_VERSION} ${DPT_CUDNN_LIBRARY}, "
                 "NCCL ${DPT_NCCL_VERSION} ${DPT_NCCL_LIBRARY}")
endif()

# dpt_add_cuda_objects(NAME target SOURCES file.cu...): an object library of .cu files with the
# flags every kernel of dptrain needs. dpt_flags reaches every target that links dpt::runtime and
# its gcc options (-Wall, -Wpedantic, ...) are unknown to nvcc, so a .cu target links no dpt
# library: it gets dpt::runtime's include directories, the host compiler's warnings through
# -Xcompiler (nvcc's own warnings become errors with DPT_WERROR; -Wpedantic is left out: nvcc's
# generated host stubs are not pedantic C++), and --fmad=false: no a*b+c contraction, as the CPU
# build (-ffp-contract=off), so math shared with the host gives the host's bits. The same flags as
# src/kernels/CMakeLists.txt's dpt_kernels_cu.
function(dpt_add_cuda_objects)
  cmake_parse_arguments(T "" "NAME" "SOURCES" ${ARGN})
  add_library(${T_NAME} OBJECT ${T_SOURCES})
  target_include_directories(${T_NAME} PRIVATE
                             $<TARGET_PROPERTY:dpt_runtime,INTERFACE_INCLUDE_DIRECTORIES>)
  target_link_libraries(${T_NAME} PRIVATE CUDA::cudart)
  target_compile_options(${T_NAME} PRIVATE
    --fmad=false
    "-Xcompiler=-Wall,-Wextra,-Wundef,-Wshadow=local,-fno-math-errno"
    $<$<BOOL:${DPT_WERROR}>:-Werror=all-warnings>
    $<$<BOOL:${DPT_WERROR}>:-Xcompiler=-Werror>)
endfunction()
