// Bounds checking inside threadgroup memory (MPSKERNELS_EMULATOR_BOUNDS=1).
//
// Without it, every threadgroup array of a group lies in one arena, back to back, so an index one past the end
// of one array silently reads or writes its neighbour. Under bounds checking each array (a `threadgroup T x[N]`
// declaration, or a [[threadgroup(i)]] argument) gets a mapping of its own:
//
//   [64 KiB PROT_NONE][red zone][array][slack < 16 bytes][64 KiB PROT_NONE]
//
// The array ends at the trailing guard (give or take the slack that keeps its start 16-byte aligned), so a read
// or write past its end faults at once and the fault handler names the lane, the array and the offset. The red
// zone (the rest of the first data page, before the array) and the slack are filled with kRedZoneByte and checked
// at every barrier and at the end of each threadgroup: a write there is reported with the array and the offsets
// it hit. Reads of the red zone or the slack are not caught (they see 0xFE bytes); anything further than the
// red zone before the start, or up to 64 KiB past the end, faults. The guards are 64 KiB, twice the threadgroup
// memory limit, so an index off by a whole array still lands in one.
#pragma once

#include <cstdint>
#include <cstring>
#include <sys/mman.h>

namespace mtl {

constexpr unsigned char kRedZoneByte = 0xFE;  // distinct from the poison (0xFF) that fills the arrays

struct GuardedArray {
  static constexpr size_t kPage = 4096;
  static constexpr size_t kGuard = 16 * kPage;

  char* map = nullptr;
  size_t mapped = 0;
  unsigned char* zone = nullptr;  // first byte after the leading guard: start of the red zone
  unsigned char* data = nullptr;  // the array
  size_t size = 0;                // the array's bytes
  size_t zone_end = 0;            // bytes from `zone` to the trailing guard (red zone + array + slack)
  int32_t key = -1;               // site id (declared arrays) or [[threadgroup(i)]] index
  const char* file = nullptr;     // declaration site of a declared array
  unsigned line = 0;

  bool map_for(size_t bytes) {
    size_t padded = (bytes + 15) / 16 * 16;
    size_t pages = (padded + kPage - 1) / kPage * kPage;
    mapped = kGuard + pages + kGuard;
    void* m = mmap(nullptr, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    map = static_cast<char*>(m);
    zone = reinterpret_cast<unsigned char*>(map + kGuard);
    if (mprotect(zone, pages, PROT_READ | PROT_WRITE) != 0) return false;
    zone_end = pages;
    data = zone + pages - padded;
    size = bytes;
    std::memset(zone, kRedZoneByte, pages);
    return true;
  }
  bool contains(const void* address) const {
    const char* a = static_cast<const char*>(address);
    return map && a >= map && a < map + mapped;
  }
  // First and last offset (relative to `data`) of red-zone bytes that no longer hold the pattern; false if none.
  bool damaged(long long& first, long long& last) const {
    const unsigned char* end = zone + zone_end;
    const unsigned char* lo = nullptr;
    const unsigned char* hi = nullptr;
    for (const unsigned char* p = zone; p < data; p += 8) {  // the red zone: a multiple of 16 bytes
      uint64_t word;
      std::memcpy(&word, p, 8);
      if (word == 0xFEFEFEFEFEFEFEFEull) continue;
      for (int k = 0; k < 8; ++k)
        if (p[k] != kRedZoneByte) {
          if (!lo) lo = p + k;
          hi = p + k;
        }
    }
    for (const unsigned char* p = data + size; p < end; ++p)  // the slack
      if (*p != kRedZoneByte) {
        if (!lo) lo = p;
        hi = p;
      }
    if (!lo) return false;
    first = (long long)(lo - data);
    last = (long long)(hi - data);
    return true;
  }
  void release() {
    if (map) munmap(map, mapped);
    *this = GuardedArray();
  }
};

// One worker's guarded arrays for one dispatch. Declared arrays are mapped when a group first reaches their
// declaration and reused (re-poisoned) by the worker's later groups; [[threadgroup(i)]] arguments are mapped on
// the worker's first group.
struct ThreadgroupGuards {
  static constexpr int kMaxArrays = 64 + 31;
  GuardedArray arrays[kMaxArrays];
  int count = 0;
  int first_declared = 0;  // arrays[0, first_declared) are the [[threadgroup(i)]] arguments

  GuardedArray* declared(int32_t site) {
    for (int i = first_declared; i < count; ++i)
      if (arrays[i].key == site) return &arrays[i];
    return nullptr;
  }
  GuardedArray* add(int32_t key, size_t bytes) {
    if (count == kMaxArrays) return nullptr;
    GuardedArray& a = arrays[count];
    if (!a.map_for(bytes)) {
      a.release();
      return nullptr;
    }
    a.key = key;
    ++count;
    return &a;
  }
  void poison(unsigned char poison_byte) {
    for (int i = 0; i < count; ++i) std::memset(arrays[i].data, poison_byte, arrays[i].size);
  }
  const GuardedArray* locate(const void* address) const {
    for (int i = 0; i < count; ++i)
      if (arrays[i].contains(address)) return &arrays[i];
    return nullptr;
  }
  bool is_argument(const GuardedArray* a) const { return a - arrays < first_declared; }
  ~ThreadgroupGuards() {
    for (int i = 0; i < count; ++i) arrays[i].release();
  }
};

}  // namespace mtl
