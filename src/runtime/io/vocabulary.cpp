// SPDX-License-Identifier: MIT
// Character- and byte-level vocabularies: UTF-8 decoding with byte offsets in errors, the stored
// ("\xNN"-escaped) form of the entries, encoding and decoding.
#include "runtime/io/vocabulary.h"

#include <algorithm>
#include <cstdio>

#include "runtime/check.h"

namespace dpt::io {
namespace {

#define DPT_IO_CHECK(cond, ...) DPT_CHECK_KIND(::dpt::ErrorKind::kIo, cond, __VA_ARGS__)

constexpr std::size_t kMaxTokens = 65536;  // ids are stored as uint16

std::string hex_escape(unsigned value) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", value & 0xffu);
  return buf;
}

// The value of a "\xNN" entry (lowercase or uppercase hex), or -1.
int parse_escape(const std::string& s) {
  if (s.size() != 4 || s[0] != '\\' || s[1] != 'x') return -1;
  int value = 0;
  for (int i = 2; i < 4; ++i) {
    const char c = s[static_cast<std::size_t>(i)];
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// "U+0041 'A'" for messages (the character itself only when printable ASCII).
std::string describe_code_point(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  std::string out = buf;
  if (cp >= 0x20 && cp < 0x7f) out += std::string(" '") + static_cast<char>(cp) + "'";
  return out;
}

// Decodes the sequence at bytes[*pos], advancing *pos; false when it is not valid UTF-8.
bool next_code_point(std::string_view bytes, std::size_t* pos, char32_t* out) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  const unsigned char lead = byte(*pos);
  int length = 0;
  char32_t cp = 0;
  if (lead < 0x80) {
    *out = lead;
    ++*pos;
    return true;
  } else if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    cp = lead & 0x1fu;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    cp = lead & 0x0fu;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    cp = lead & 0x07u;
  } else {
    return false;  // a continuation byte, an overlong 2-byte lead (C0, C1) or F5..FF
  }
  if (*pos + static_cast<std::size_t>(length) > bytes.size()) return false;
  for (int k = 1; k < length; ++k) {
    const unsigned char c = byte(*pos + static_cast<std::size_t>(k));
    if ((c & 0xc0u) != 0x80u) return false;
    cp = (cp << 6) | (c & 0x3fu);
  }
  // Overlong 3- and 4-byte forms, surrogates, and values above U+10FFFF.
  if ((length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return false;
  }
  *out = cp;
  *pos += static_cast<std::size_t>(length);
  return true;
}

}  // namespace

const char* tokenizer_name(Tokenizer tokenizer) {
  return tokenizer == Tokenizer::kByte ? "byte" : "char";
}

std::optional<Tokenizer> parse_tokenizer(std::string_view name) {
  if (name == "char") return Tokenizer::kChar;
  if (name == "byte") return Tokenizer::kByte;
  return std::nullopt;
}

std::vector<char32_t> decode_utf8(std::string_view bytes, const std::string& what) {
  std::vector<char32_t> out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    char32_t cp = 0;
    DPT_IO_CHECK(next_code_point(bytes, &pos, &cp), what, ": invalid UTF-8 at byte offset ", pos,
                 " (byte ", hex_escape(static_cast<unsigned char>(bytes[pos])),
                 "): expected UTF-8 text for a character-level vocabulary (or use --tokenizer byte)");
    out.push_back(cp);
  }
  return out;
}

std::string encode_utf8(char32_t cp) {
  DPT_CHECK(cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff), "encode_utf8: ",
            describe_code_point(cp), " is not a Unicode scalar value");
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

Vocabulary Vocabulary::bytes() {
  Vocabulary v;
  v.tokenizer_ = Tokenizer::kByte;
  for (int b = 0; b < 256; ++b) v.texts_.emplace_back(1, static_cast<char>(b));
  return v;
}

Vocabulary Vocabulary::chars(std::vector<char32_t> code_points) {
  std::sort(code_points.begin(), code_points.end());
  code_points.erase(std::unique(code_points.begin(), code_points.end()), code_points.end());
  DPT_CHECK(!code_points.empty(), "a character vocabulary needs at least one character");
  DPT_CHECK(code_points.size() <= kMaxTokens, "a character vocabulary holds at most ", kMaxTokens,
            " characters (token ids are uint16), found ", code_points.size(), " distinct ones");
  Vocabulary v;
  v.tokenizer_ = Tokenizer::kChar;
  for (char32_t cp : code_points) v.texts_.push_back(encode_utf8(cp));
  v.code_points_ = std::move(code_points);
  return v;
}

Vocabulary Vocabulary::from_stored(Tokenizer tokenizer, const std::vector<std::string>& entries,
                                   const std::string& what) {
  if (tokenizer == Tokenizer::kByte) {
    DPT_IO_CHECK(entries.size() == 256, what, ": expected 256 entries for tokenizer \"byte\", found ",
                 entries.size());
    Vocabulary v = bytes();
    const std::vector<std::string> expected = v.stored_entries();
    for (std::size_t i = 0; i < entries.size(); ++i) {
      // Either form of byte i is accepted: the escape, or the character itself when it is ASCII.
      const bool ok = entries[i] == expected[i] || parse_escape(entries[i]) == static_cast<int>(i);
      DPT_IO_CHECK(ok, what, ": entry ", i, ": expected byte ", hex_escape(static_cast<unsigned>(i)),
                   " (\"", expected[i], "\"), found \"", entries[i], "\"");
    }
    return v;
  }
  DPT_IO_CHECK(!entries.empty() && entries.size() <= kMaxTokens, what,
               ": expected 1 to 65536 entries for tokenizer \"char\", found ", entries.size());
  std::vector<char32_t> code_points;
  code_points.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const int escaped = parse_escape(entries[i]);
    char32_t cp = 0;
    if (escaped >= 0) {
      cp = static_cast<char32_t>(escaped);
    } else {
      std::size_t pos = 0;
      const bool one_character = !entries[i].empty() && next_code_point(entries[i], &pos, &cp) &&
                                 pos == entries[i].size();
      DPT_IO_CHECK(one_character, what, ": entry ", i,
                   ": expected one UTF-8 character or \"\\xNN\", found \"", entries[i], "\" (",
                   entries[i].size(), " bytes)");
    }
    DPT_IO_CHECK(i == 0 || cp > code_points.back(), what, ": entry ", i, " (",
                 describe_code_point(cp), "): expected code points in ascending order, after ",
                 describe_code_point(i == 0 ? 0 : code_points.back()));
    code_points.push_back(cp);
  }
  return chars(std::move(code_points));
}

std::vector<std::string> Vocabulary::stored_entries() const {
  std::vector<std::string> out;
  out.reserve(texts_.size());
  for (const std::string& t : texts_) {
    const auto first = static_cast<unsigned char>(t[0]);
    const bool escape = first == 0 || (tokenizer_ == Tokenizer::kByte && first >= 0x80);
    out.push_back(escape ? hex_escape(first) : t);
  }
  return out;
}

std::int32_t Vocabulary::id_of(char32_t cp) const {
  const auto it = std::lower_bound(code_points_.begin(), code_points_.end(), cp);
  if (it == code_points_.end() || *it != cp) return -1;
  return static_cast<std::int32_t>(it - code_points_.begin());
}

std::vector<std::int32_t> Vocabulary::encode(std::string_view text, const std::string& what) const {
  std::vector<std::int32_t> ids;
  if (tokenizer_ == Tokenizer::kByte) {
    ids.reserve(text.size());
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = pos;
    char32_t cp = 0;
    DPT_IO_CHECK(next_code_point(text, &pos, &cp), what, ": invalid UTF-8 at byte offset ", start,
                 " (byte ", hex_escape(static_cast<unsigned char>(text[start])), ")");
    const std::int32_t id = id_of(cp);
    DPT_IO_CHECK(id >= 0, what, ": character ", describe_code_point(cp), " at byte offset ", start,
                 " is not in the vocabulary (", size(), " characters)");
    ids.push_back(id);
  }
  return ids;
}

std::string Vocabulary::decode(const std::int32_t* ids, std::size_t count) const {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    DPT_CHECK(ids[i] >= 0 && ids[i] < size(), "decode: token ", ids[i], " at position ", i,
              " outside the vocabulary [0, ", size(), ")");
    out += texts_[static_cast<std::size_t>(ids[i])];
  }
  return out;
}

}  // namespace dpt::io
