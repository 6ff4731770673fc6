# SPDX-License-Identifier: MIT
# Finds what the CUDA backend needs (nvcc, cudart, cuBLAS/cuBLASLt, cuDNN 9, NCCL 2) and sets
# DPT_HAVE_CUDA. With DPT_CUDA=ON a missing piece is fatal and named; with AUTO it is reported and
# the build stays CPU-only. Defines the imported targets dpt::cudnn and dpt::nccl (neither ships a
# CMake package).
include_guard(GLOBAL)
include(CheckLanguage)

function(dpt_cuda_missing what)
  if(DPT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DPT_CUDA=ON but ${what} (set CUDAToolkit_ROOT / CMAKE_PREFIX_PATH)")
  endif()
  message(STATUS "dptrain: DPT_CUDA=AUTO and ${what}: CPU-only build")
endfunction()

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
    set(DPT_HAVE_CUDA 1)
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
                 "${CMAKE_CUDA_ARCHITECTURES}), cuDNN ${DPT_CUDNN_LIBRARY}, NCCL ${DPT_NCCL_LIBRARY}")
endif()
