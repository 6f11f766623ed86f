// Bounds checking inside threadgroup memory (MPSKERNELS_EMULATOR_BOUNDS=1).
//
// Without it, every threadgroup array of a group lies in one arena, back to back, so an index one past the end
// of one array silently reads or writes its neighbour. Under bounds checking each array (a `threadgroup T x[N]`
// declaration, or a [[threadgroup(i)]] argument) gets a mapping of its own, in one of two layouts that alternate
// between threadgroups (even linear threadgroup index: the first; odd: the second):
//
//   kEndAtGuard:    [64 KiB PROT_NONE][red zone][array][slack < 16 bytes][64 KiB PROT_NONE]
//   kStartAtGuard:  [64 KiB PROT_NONE][array][red zone                  ][64 KiB PROT_NONE]
//
// An access that crosses the edge of the array lying against a guard faults at once, read or write, and the fault
// handler names the lane, the array and the offset; so with two threadgroups or more, reads and writes just past
// either end fault in one of them. The red zones (the rest of the array's pages, filled with kRedZoneByte) are
// checked at every barrier and at the end of each threadgroup: a write there is reported with the array and the
// offsets it hit. Reads of a red zone are not caught (they see 0xFE bytes). The guards are 64 KiB, twice the
// threadgroup memory limit, so an index off by a whole array still lands in one.
#pragma once

#include <cstdint>
#include <cstring>
#include <sys/mman.h>

namespace mtl {

constexpr unsigned char kRedZoneByte = 0xFE;  // distinct from the poison (0xFF) that fills the arrays

enum GuardLayout : int { kEndAtGuard = 0, kStartAtGuard = 1 };

// Offsets (relative to `data`) of the first and last bytes in [from, to) that lost the red-zone pattern.
inline void find_damage(const unsigned char* from, const unsigned char* to, const unsigned char* data,
                        long long& first, long long& last, bool& any) {
  const unsigned char* p = from;
  for (; p < to && (reinterpret_cast<uintptr_t>(p) & 7); ++p)
    if (*p != kRedZoneByte) {
      if (!any) first = (long long)(p - data);
      last = (long long)(p - data);
      any = true;
    }
  for (; p + 8 <= to; p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    if (word == 0xFEFEFEFEFEFEFEFEull) continue;
    for (int k = 0; k < 8; ++k)
      if (p[k] != kRedZoneByte) {
        if (!any) first = (long long)(p + k - data);
        last = (long long)(p + k - data);
        any = true;
      }
  }
  for (; p < to; ++p)
    if (*p != kRedZoneByte) {
      if (!any) first = (long long)(p - data);
      last = (long long)(p - data);
      any = true;
    }
}

struct GuardedArray {
  static constexpr size_t kPage = 4096;
  static constexpr size_t kGuard = 16 * kPage;

  char* map = nullptr;
  size_t mapped = 0;
  unsigned char* zone = nullptr;  // first byte after the leading guard
  unsigned char* data = nullptr;  // the array
  size_t size = 0;                // the array's bytes
  size_t zone_end = 0;            // bytes from `zone` to the trailing guard (array + red zone + slack)
  int32_t key = -1;               // site id (declared arrays) or [[threadgroup(i)]] index
  GuardLayout layout = kEndAtGuard;
  const char* file = nullptr;     // declaration site of a declared array
  unsigned line = 0;

  bool map_for(size_t bytes, GuardLayout where) {
    size_t padded = (bytes + 15) / 16 * 16;  // the array starts 16-byte aligned either way
    size_t pages = (padded + kPage - 1) / kPage * kPage;
    if (pages == 0) pages = kPage;
    mapped = kGuard + pages + kGuard;
    void* m = mmap(nullptr, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    map = static_cast<char*>(m);
    zone = reinterpret_cast<unsigned char*>(map + kGuard);
    if (mprotect(zone, pages, PROT_READ | PROT_WRITE) != 0) return false;
    zone_end = pages;
    layout = where;
    data = where == kStartAtGuard ? zone : zone + pages - padded;
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
    bool any = false;
    find_damage(zone, data, data, first, last, any);
    find_damage(data + size, zone + zone_end, data, first, last, any);
    return any;
  }
  void release() {
    if (map) munmap(map, mapped);
    *this = GuardedArray();
  }
};

// One worker's guarded arrays for one dispatch, in both layouts. Declared arrays are mapped when a group first
// reaches their declaration and reused (re-poisoned) by the worker's later groups of the same layout;
// [[threadgroup(i)]] arguments are mapped on the worker's first group.
struct ThreadgroupGuards {
  static constexpr int kMaxArrays = 2 * (64 + 31);
  GuardedArray arrays[kMaxArrays];
  int count = 0;
  int first_declared = 0;  // arrays[0, first_declared) are the [[threadgroup(i)]] arguments

  GuardedArray* declared(int32_t site, GuardLayout layout) {
    for (int i = first_declared; i < count; ++i)
      if (arrays[i].key == site && arrays[i].layout == layout) return &arrays[i];
    return nullptr;
  }
  GuardedArray* add(int32_t key, size_t bytes, GuardLayout layout) {
    if (count == kMaxArrays) return nullptr;
    GuardedArray& a = arrays[count];
    if (!a.map_for(bytes, layout)) {
      a.release();
      return nullptr;
    }
    a.key = key;
    ++count;
    return &a;
  }
  void poison(GuardLayout layout, unsigned char poison_byte) {
    for (int i = 0; i < count; ++i)
      if (arrays[i].layout == layout) std::memset(arrays[i].data, poison_byte, arrays[i].size);
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
