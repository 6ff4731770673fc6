// SPDX-License-Identifier: MIT
// The token vocabulary of a text dataset (docs/formats.md, "Text datasets"): character-level (the
// sorted Unicode code points of the corpus) or byte-level (the 256 byte values). Encodes text to
// token ids and decodes ids back to text; no HDF5 here, so tools and the sampler can use it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpt::io {

enum class Tokenizer { kChar, kByte };
const char* tokenizer_name(Tokenizer tokenizer);                  // "char" | "byte"
std::optional<Tokenizer> parse_tokenizer(std::string_view name);  // nullopt for anything else

// The code points of UTF-8 `bytes`. Invalid UTF-8 (a stray continuation byte, a truncated or
// overlong sequence, a surrogate, a value above U+10FFFF) is an IoError naming `what` (a file)
// and the byte offset of the offending sequence.
std::vector<char32_t> decode_utf8(std::string_view bytes, const std::string& what);
std::string encode_utf8(char32_t code_point);

class Vocabulary {
 public:
  Vocabulary() = default;
  // The 256 byte values, token i = byte i.
  static Vocabulary bytes();
  // One token per distinct code point, in ascending code-point order (token i = the i-th smallest).
  // Fails when there are more than 65536 (token ids are stored as uint16).
  static Vocabulary chars(std::vector<char32_t> code_points);
  // From the `vocabulary` attribute of a file (entries in their stored form, see stored_entries()).
  // Any entry that is not what `tokenizer` requires is an IoError naming `what`, the entry's index,
  // what was expected and what was found.
  static Vocabulary from_stored(Tokenizer tokenizer, const std::vector<std::string>& entries,
                                const std::string& what);

  Tokenizer tokenizer() const { return tokenizer_; }
  int size() const { return static_cast<int>(texts_.size()); }
  // The bytes token `id` stands for (byte-level: one byte, maybe not UTF-8 on its own).
  const std::string& text(int id) const { return texts_[static_cast<std::size_t>(id)]; }
  const std::vector<std::string>& texts() const { return texts_; }
  // How each entry is stored in the file: its UTF-8 text, except the ones an HDF5 string cannot
  // hold or that are not valid UTF-8 on their own: NUL and, byte-level, bytes 0x80..0xFF are
  // written as the four characters "\xNN" (lowercase hex). Every real entry is one character, so
  // a four-character entry is never ambiguous.
  std::vector<std::string> stored_entries() const;

  // Token ids of `text`. A character (char-level) that is not in the vocabulary, or invalid UTF-8,
  // is an IoError naming `what` and the byte offset.
  std::vector<std::int32_t> encode(std::string_view text, const std::string& what) const;
  // Token ids of decoded code points (char-level only); -1 for one not in the vocabulary.
  std::int32_t id_of(char32_t code_point) const;
  // The text of `ids` (each in [0, size())).
  std::string decode(const std::int32_t* ids, std::size_t count) const;

 private:
  Tokenizer tokenizer_ = Tokenizer::kChar;
  std::vector<std::string> texts_;
  std::vector<char32_t> code_points_;  // char-level: ascending, token i = code_points_[i]
};

}  // namespace dpt::io
