// The emulator's executor: runs one dispatch (dispatchThreads semantics) of one kernel entry.
//
// Threadgroups are spread over OS threads. Inside a threadgroup every GPU thread is a fiber ("lane") and a
// deterministic scheduler runs each ready lane until it blocks at a threadgroup barrier or a SIMD collective,
// or finishes. When nothing is ready, the collectives of each SIMD group resolve over the lanes waiting at them
// (the active lanes); when no collective is waiting, a barrier releases once every unfinished lane waits at it.
// Kernels that use neither barriers nor collectives skip the fibers and run their lanes as a plain loop.
#pragma once

#include <atomic>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <csignal>
#include <setjmp.h>
#include <sys/mman.h>

#include "fiber.h"
#include "threadgroup_guard.h"
#include "types.h"

namespace mtl {

constexpr int kSimdWidth = 32;
constexpr unsigned kMaxThreadsPerGroup = 1024;
constexpr unsigned kMaxThreadgroupMemory = 32 * 1024;
constexpr int kMaxBuffers = 31;
constexpr int kMaxThreadgroupArgs = 31;
constexpr unsigned char kPoisonByte = 0xFF;  // all-ones: NaN for float/half/bfloat, -1 for signed integers

// ---------------------------------------------------------------------------------------------------------------
// The C ABI shared with Python (ctypes mirrors these structs in mpskernels/emulator/abi.py).

enum Role : int32_t {
  kRoleBuffer = 0,
  kRoleThreadgroup = 1,
  kRoleBuiltin = 2,
};

enum Builtin : int32_t {
  kThreadPositionInGrid = 0,
  kThreadPositionInThreadgroup,
  kThreadgroupPositionInGrid,
  kThreadsPerThreadgroup,
  kThreadsPerGrid,
  kThreadgroupsPerGrid,
  kThreadIndexInThreadgroup,
  kThreadIndexInSimdgroup,
  kSimdgroupIndexInThreadgroup,
  kThreadsPerSimdgroup,
  kSimdgroupsPerThreadgroup,
  kThreadIndexInQuadgroup,
  kQuadgroupIndexInThreadgroup,
  kQuadgroupsPerThreadgroup,
  kDispatchThreadsPerThreadgroup,
  kThreadExecutionWidth,
  kDispatchSimdgroupsPerThreadgroup,
  kDispatchQuadgroupsPerThreadgroup,
};

// Element kinds reported for buffer parameters, so Python can pack scalars by their real (instantiated) type.
enum ValueKind : int32_t {
  kKindOther = 0,  // struct or anything else: passed as raw bytes
  kKindBool,
  kKindSigned,
  kKindUnsigned,
  kKindFloat,
  kKindHalf,
  kKindBfloat,
};

struct ParamInfo {
  int32_t role;
  int32_t index;      // buffer / threadgroup slot, or Builtin
  int32_t is_pointer; // buffers: pointer (array) or reference (single value)
  int32_t value_kind; // ValueKind of the pointee's scalar element (of a vector's components for vectors)
  int64_t value_size; // sizeof the pointee / referenced type
  int64_t elem_size;  // sizeof its scalar element
};

enum OrderMode : uint32_t { kOrderFixed = 0, kOrderShuffled = 1 };

struct DispatchArgs {
  void* buffers[kMaxBuffers];
  uint64_t buffer_sizes[kMaxBuffers];
  uint32_t threadgroup_lengths[kMaxThreadgroupArgs];
  uint32_t grid[3];
  uint32_t group[3];
  uint32_t order_mode;
  uint32_t workers;
  uint64_t seed;
  uint32_t bounds_check;  // 1: run on guarded copies of the buffers and report out-of-bounds accesses
  uint32_t reserved;
  // Names for bounds errors in threadgroup memory (may be null): by declaration site (`threadgroup T x[N]`, in
  // source order), and by [[threadgroup(i)]] index (kMaxThreadgroupArgs entries).
  const char* const* threadgroup_names;
  const char* const* threadgroup_arg_names;
  char error[2048];
};

// ---------------------------------------------------------------------------------------------------------------

struct Lane;
struct Group;
struct SimdView;
using Resolver = void (*)(SimdView&);
using LaneFn = void (*)(Lane&);

struct Site {
  const char* file;
  unsigned line;
};

enum class LaneState : uint8_t { Ready, Barrier, Collective, Done };

struct alignas(64) Lane {
  fiber::Context ctx;
  Group* group;
  LaneState state;
  uint32_t index;        // linear index in the threadgroup
  uint32_t local[3];     // thread_position_in_threadgroup
  Resolver resolver;     // collective the lane waits at
  const char* op_name;
  Site site;
  int64_t iarg[2];       // integer operands of a collective (lane, delta, modulo)
  alignas(16) unsigned char in[2][64];  // value operands of a collective
  alignas(16) unsigned char out[64];    // its result

  template <class T> void put(const T& v, int slot = 0) {
    static_assert(sizeof(T) <= sizeof(in[0]), "collective operand too large");
    std::memcpy(in[slot], &v, sizeof(T));
  }
  template <class T> T result() const {
    T v;
    std::memcpy(&v, out, sizeof(T));
    return v;
  }
};

// The lanes of one SIMD group that wait at the collective being resolved.
struct SimdView {
  Lane* lanes[kSimdWidth];  // null where the lane is inactive (finished, elsewhere, or beyond the group size)
  uint32_t first_index;     // linear index of lane 0
};

struct Entry {
  const char* host_name;
  const char* kernel_name;
  LaneFn lane_fn;
  const ParamInfo* params;
  int32_t num_params;
  int32_t uses_fibers;  // 0: no barrier or collective is reachable: plain-loop fast path
};

// Everything one dispatch shares between its worker threads.
struct ShadowBuffers;

struct Dispatch {
  const Entry* entry;
  DispatchArgs* args;
  const ShadowBuffers* shadows = nullptr;  // bounds checking
  uint32_t groups[3];
  uint64_t num_groups;
  std::mutex error_mutex;
  volatile bool failed = false;
};

// Per OS thread: reusable fiber stacks and the threadgroup memory arena.
// Fiber stacks of one worker for one dispatch: one mapping holding [guard page][stack] for every lane. A write
// past a stack's bottom faults on its guard page (reported as a kernel error, see `overflow` below) instead of
// corrupting the neighbour. The mapping is released with the dispatch, so the process's count of memory
// mappings stays small however many kernel libraries are loaded.
struct StackRegion {
  char* mem = nullptr;
  size_t mapped = 0;
  size_t stack_size = 0;
  uint32_t count = 0;

  static constexpr size_t kGuard = 4096;

  bool reserve(uint32_t n, size_t size) {
    if (n <= count && size == stack_size) return true;
    release();
    size_t unit = kGuard + size, total = unit * n;
    void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    mem = static_cast<char*>(m);
    mapped = total;
    stack_size = size;
    count = n;
    for (uint32_t i = 0; i < n; ++i) mprotect(mem + i * unit, kGuard, PROT_NONE);
    return true;
  }
  char* stack(uint32_t i) const { return mem + size_t(i) * (kGuard + stack_size) + kGuard; }
  bool in_guard(const void* address) const {
    const char* a = static_cast<const char*>(address);
    if (!mem || a < mem || a >= mem + mapped) return false;
    return size_t(a - mem) % (kGuard + stack_size) < kGuard;
  }
  void release() {
    if (mem) munmap(mem, mapped);
    mem = nullptr;
    mapped = stack_size = 0;
    count = 0;
  }
  ~StackRegion() { release(); }
};

// Per OS thread of one dispatch: lanes, fiber stacks and the threadgroup memory arena. Nothing outlives the
// dispatch, so an idle kernel library holds no memory.
// Bounds checking: every buffer runs on a copy that ends exactly where a PROT_NONE page begins (and starts after
// another one, past the rounding slack), so reading or writing past either end faults; the fault handler names the
// buffer and the offset. The copies go back into the caller's memory after the dispatch.
struct ShadowBuffers {
  static constexpr size_t kPage = 4096;
  struct Shadow {
    char* map = nullptr;  // [guard][data pages][guard]
    size_t mapped = 0;
    char* data = nullptr;
    size_t size = 0;
    void* original = nullptr;
  };
  Shadow shadows[kMaxBuffers];

  bool install(DispatchArgs& a) {
    for (int i = 0; i < kMaxBuffers; ++i) {
      size_t size = a.buffer_sizes[i];
      if (!a.buffers[i] || size == 0) continue;
      Shadow& sh = shadows[i];
      size_t pages = (size + kPage - 1) / kPage * kPage;
      sh.mapped = pages + 2 * kPage;
      void* m = mmap(nullptr, sh.mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) return false;
      sh.map = static_cast<char*>(m);
      mprotect(sh.map, kPage, PROT_NONE);
      mprotect(sh.map + kPage + pages, kPage, PROT_NONE);
      sh.data = sh.map + kPage + pages - size;
      sh.size = size;
      sh.original = a.buffers[i];
      std::memcpy(sh.data, sh.original, size);
      a.buffers[i] = sh.data;
    }
    return true;
  }
  // The buffer whose guard page holds `address` (and the byte offset from its start), or -1.
  int locate(const void* address, long long& offset) const {
    const char* p = static_cast<const char*>(address);
    for (int i = 0; i < kMaxBuffers; ++i) {
      const Shadow& sh = shadows[i];
      if (sh.map && p >= sh.map && p < sh.map + sh.mapped) {
        offset = (long long)(p - sh.data);
        return i;
      }
    }
    return -1;
  }
  void restore(DispatchArgs& a) {
    for (int i = 0; i < kMaxBuffers; ++i) {
      Shadow& sh = shadows[i];
      if (!sh.map) continue;
      std::memcpy(sh.original, sh.data, sh.size);
      a.buffers[i] = sh.original;
      munmap(sh.map, sh.mapped);
      sh = Shadow();
    }
  }
};

namespace overflow {
struct AltStack;
}

struct Worker {
  std::vector<Lane> lanes;
  StackRegion stacks;
  std::unique_ptr<overflow::AltStack> alt_stack;  // set up on the first threadgroup that runs fibers
  std::unique_ptr<ThreadgroupGuards> guards;      // bounds checking: each threadgroup array in its own mapping
  alignas(16) unsigned char arena[kMaxThreadgroupMemory + 64];
};

struct Group {
  Dispatch* dispatch;
  Worker* worker;
  uint32_t id[3];          // threadgroup_position_in_grid
  uint32_t size[3];        // threads_per_threadgroup (reduced at the grid's edge)
  uint32_t num_lanes;
  Lane* lanes;
  fiber::Context scheduler;
  bool in_fiber_mode;
  bool failed;
  std::jmp_buf fast_path_exit;
  uint32_t arena_used;  // bytes of the 32 KiB budget used (as laid out in the arena, guarded or not)
  unsigned char* dynamic_ptrs[kMaxThreadgroupArgs];
  uint32_t dynamic_bytes;
  int32_t site_ids[64];
  unsigned char* site_ptrs[64];
  int num_sites;
  std::vector<uint32_t> order;  // lane order of a scheduling pass (shuffled each pass in shuffled mode)
  uint32_t cursor;              // position of the pass in `order`
  GuardLayout guard_layout;     // bounds checking: where this group's threadgroup arrays lie against their guards
};

namespace detail {
inline thread_local Lane* current_lane = nullptr;
}

inline Lane& current_lane() { return *detail::current_lane; }

// ---------------------------------------------------------------------------------------------------------------
// Errors: the first one wins; the failing threadgroup stops at once and the others stop at their next start.

inline void record_error(Dispatch& d, const char* text) {
  std::lock_guard<std::mutex> lock(d.error_mutex);
  if (!d.failed) {
    std::snprintf(d.args->error, sizeof(d.args->error), "%s", text);
    d.failed = true;
  }
}

[[noreturn]] inline void abandon_lane(Lane& lane) {
  Group& g = *lane.group;
  g.failed = true;
  if (g.in_fiber_mode) {
    lane.state = LaneState::Done;
    fiber::swap(lane.ctx, g.scheduler);
  }
  std::longjmp(g.fast_path_exit, 1);
}

// Raised from kernel code (through the shim) with the kernel's .metal site.
template <class... A>
[[noreturn]] inline void fail_at(Site site, const char* fmt, A... a) {
  Lane& lane = current_lane();
  Dispatch& d = *lane.group->dispatch;
  char msg[1536];
  std::snprintf(msg, sizeof(msg), fmt, a...);
  char text[2048];
  std::snprintf(text, sizeof(text), "%s:%u: kernel '%s' (threadgroup %u,%u,%u, thread %u): %s", site.file, site.line,
                d.entry->host_name, lane.group->id[0], lane.group->id[1], lane.group->id[2], lane.index, msg);
  record_error(d, text);
  abandon_lane(lane);
}

// Raised by a collective's resolver, which runs on the scheduler's stack (not in a lane): record and return.
template <class... A>
inline void fail_collective(SimdView& view, const char* fmt, A... a) {
  Lane* lane = nullptr;
  for (Lane* l : view.lanes)
    if (l && !lane) lane = l;
  Group& g = *lane->group;
  char msg[1536];
  std::snprintf(msg, sizeof(msg), fmt, a...);
  char text[2048];
  std::snprintf(text, sizeof(text), "%s:%u: kernel '%s' (threadgroup %u,%u,%u, SIMD group %u): %s: %s", lane->site.file,
                lane->site.line, g.dispatch->entry->host_name, g.id[0], g.id[1], g.id[2],
                view.first_index / kSimdWidth, lane->op_name, msg);
  record_error(*g.dispatch, text);
  g.failed = true;
}

// ---------------------------------------------------------------------------------------------------------------
// Threadgroup memory. Statement-level `threadgroup T name[N];` declarations become tg_alloc<T[N]>(site): the
// first lane to reach the declaration reserves the storage for the whole group; the others get the same address.

inline void check_threadgroup_budget(Group& g, Site site, uint32_t static_bytes) {
  if (static_bytes + g.dynamic_bytes > kMaxThreadgroupMemory)
    fail_at(site, "threadgroup memory exceeds 32 KiB: %u bytes declared in the kernel + %u bytes of [[threadgroup]] "
                  "arguments",
            static_bytes, g.dynamic_bytes);
}

// Under bounds checking the storage of a site is the worker's guarded mapping for it instead of the arena.
inline unsigned char* guarded_site(Group& g, int site_id, size_t bytes, const char* file, unsigned line) {
  ThreadgroupGuards& guards = *g.worker->guards;
  GuardedArray* array = guards.declared(site_id, g.guard_layout);
  if (!array) {
    array = guards.add(site_id, bytes, g.guard_layout);
    if (!array) fail_at({file, line}, "emulator: could not map guarded threadgroup memory");
    array->file = file;
    array->line = line;
    std::memset(array->data, kPoisonByte, bytes);
  }
  return array->data;
}

template <class T>
inline T* tg_alloc(int site_id, const char* file, unsigned line) {
  Group& g = *current_lane().group;
  for (int i = 0; i < g.num_sites; ++i)
    if (g.site_ids[i] == site_id) return reinterpret_cast<T*>(g.site_ptrs[i]);
  if (g.num_sites == 64) fail_at({file, line}, "more than 64 threadgroup variables");
  uint32_t align = alignof(T) < 16 ? 16 : uint32_t(alignof(T));
  uint32_t offset = (g.arena_used + align - 1) / align * align;
  uint32_t end = offset + uint32_t(sizeof(T));
  check_threadgroup_budget(g, {file, line}, end - g.dynamic_bytes);
  unsigned char* storage = g.worker->guards ? guarded_site(g, site_id, sizeof(T), file, line)
                                            : g.worker->arena + offset;
  g.site_ids[g.num_sites] = site_id;
  g.site_ptrs[g.num_sites] = storage;
  ++g.num_sites;
  g.arena_used = end;
  return reinterpret_cast<T*>(storage);
}

// ---------------------------------------------------------------------------------------------------------------
// Blocking points.

// The next ready lane of the current scheduling pass, or null when the pass is over.
inline Lane* next_ready(Group& g) {
  while (g.cursor < g.order.size()) {
    Lane* lane = &g.lanes[g.order[g.cursor++]];
    if (lane->state == LaneState::Ready) return lane;
  }
  return nullptr;
}

// Leaves a lane that blocked or finished: straight into the next ready lane (one switch instead of two through
// the scheduler), or back to the scheduler at the end of the pass.
inline void switch_from(Lane& lane) {
  Group& g = *lane.group;
  Lane* next = next_ready(g);
  if (next) {
    detail::current_lane = next;
    fiber::swap(lane.ctx, next->ctx);
  } else {
    fiber::swap(lane.ctx, g.scheduler);
  }
}

inline void block(Lane& lane, LaneState state, Site site, const char* op) {
  Group& g = *lane.group;
  if (!g.in_fiber_mode) {
    // The Python front end found no barrier or collective reachable from this kernel; reaching one is our bug.
    fail_at(site, "internal error: %s reached in a kernel classified as barrier-free", op);
  }
  lane.state = state;
  lane.site = site;
  lane.op_name = op;
  switch_from(lane);
}

inline void wait_barrier(Site site) { block(current_lane(), LaneState::Barrier, site, "threadgroup_barrier"); }

inline void wait_collective(Lane& lane, Resolver r, const char* op, Site site) {
  lane.resolver = r;
  block(lane, LaneState::Collective, site, op);
}

// ---------------------------------------------------------------------------------------------------------------
// Builtins: the uint3 value of each builtin for a lane, narrowed to the declared parameter type.

inline uint3 builtin_value(const Lane& lane, int which) {
  const Group& g = *lane.group;
  const DispatchArgs& a = *g.dispatch->args;
  const uint32_t* n = g.dispatch->groups;
  uint32_t simdgroups = (g.num_lanes + kSimdWidth - 1) / kSimdWidth;
  switch (which) {
    case kThreadPositionInGrid:
      return uint3(g.id[0] * a.group[0] + lane.local[0], g.id[1] * a.group[1] + lane.local[1],
                   g.id[2] * a.group[2] + lane.local[2]);
    case kThreadPositionInThreadgroup: return uint3(lane.local[0], lane.local[1], lane.local[2]);
    case kThreadgroupPositionInGrid: return uint3(g.id[0], g.id[1], g.id[2]);
    case kThreadsPerThreadgroup: return uint3(g.size[0], g.size[1], g.size[2]);
    case kThreadsPerGrid: return uint3(a.grid[0], a.grid[1], a.grid[2]);
    case kThreadgroupsPerGrid: return uint3(n[0], n[1], n[2]);
    case kThreadIndexInThreadgroup: return uint3(lane.index, 0, 0);
    case kThreadIndexInSimdgroup: return uint3(lane.index % kSimdWidth, 0, 0);
    case kSimdgroupIndexInThreadgroup: return uint3(lane.index / kSimdWidth, 0, 0);
    case kThreadsPerSimdgroup:
    case kThreadExecutionWidth: return uint3(kSimdWidth, 0, 0);
    case kSimdgroupsPerThreadgroup: return uint3(simdgroups, 0, 0);
    case kThreadIndexInQuadgroup: return uint3(lane.index % 4, 0, 0);
    case kQuadgroupIndexInThreadgroup: return uint3(lane.index / 4, 0, 0);
    case kQuadgroupsPerThreadgroup: return uint3((g.num_lanes + 3) / 4, 0, 0);
    case kDispatchThreadsPerThreadgroup: return uint3(a.group[0], a.group[1], a.group[2]);
    case kDispatchSimdgroupsPerThreadgroup:
      return uint3((a.group[0] * a.group[1] * a.group[2] + kSimdWidth - 1) / kSimdWidth, 0, 0);
    case kDispatchQuadgroupsPerThreadgroup: return uint3((a.group[0] * a.group[1] * a.group[2] + 3) / 4, 0, 0);
  }
  return uint3(0, 0, 0);
}

template <class T> struct builtin_cast {
  static T from(uint3 v) { return T(v.x); }
};
template <class E> struct builtin_cast<metal::vec<E, 2>> {
  static metal::vec<E, 2> from(uint3 v) { return metal::vec<E, 2>(E(v.x), E(v.y)); }
};
template <class E> struct builtin_cast<metal::vec<E, 3>> {
  static metal::vec<E, 3> from(uint3 v) { return metal::vec<E, 3>(E(v.x), E(v.y), E(v.z)); }
};

// ---------------------------------------------------------------------------------------------------------------
// Binding parameters by role. The parameter types come from the kernel's own (instantiated) signature, so
// templated kernels bind correctly without the front end having to understand C++ types.

template <class P>
inline P bind_param(Lane& lane, const ParamInfo& info) {
  Group& g = *lane.group;
  if constexpr (std::is_pointer<P>::value) {
    if (info.role == kRoleThreadgroup)
      return reinterpret_cast<P>(g.dynamic_ptrs[info.index]);
    return reinterpret_cast<P>(g.dispatch->args->buffers[info.index]);
  } else if constexpr (std::is_reference<P>::value) {
    using V = typename std::remove_reference<P>::type;
    return *reinterpret_cast<V*>(g.dispatch->args->buffers[info.index]);
  } else {
    return builtin_cast<typename std::remove_cv<P>::type>::from(builtin_value(lane, info.index));
  }
}

template <class... Ps, size_t... I>
inline void call_kernel(void (*fn)(Ps...), Lane& lane, const ParamInfo* params, std::index_sequence<I...>) {
  fn(bind_param<Ps>(lane, params[I])...);
}

template <class... Ps>
inline void call_kernel(void (*fn)(Ps...), Lane& lane, const ParamInfo* params) {
  call_kernel(fn, lane, params, std::index_sequence_for<Ps...>{});
}

template <class V> constexpr int32_t value_kind() {
  using U = typename std::remove_cv<V>::type;
  if constexpr (std::is_same<U, bool>::value) return kKindBool;
  else if constexpr (std::is_same<U, half>::value) return kKindHalf;
  else if constexpr (std::is_same<U, bfloat>::value) return kKindBfloat;
  else if constexpr (std::is_floating_point<U>::value) return kKindFloat;
  else if constexpr (std::is_integral<U>::value) return std::is_signed<U>::value ? kKindSigned : kKindUnsigned;
  else return kKindOther;
}

template <class T> struct scalar_of { using type = T; };
template <class E, int N> struct scalar_of<metal::vec<E, N>> { using type = E; };
template <class E, int N> struct scalar_of<metal::packed_vec<E, N>> { using type = E; };

template <class P> constexpr void describe_param(ParamInfo& info) {
  using V = typename std::remove_cv<typename std::remove_pointer<typename std::remove_reference<P>::type>::type>::type;
  using S = typename scalar_of<V>::type;
  info.is_pointer = std::is_pointer<P>::value ? 1 : 0;
  info.value_kind = value_kind<S>();
  info.value_size = int64_t(sizeof(V));
  info.elem_size = int64_t(sizeof(S));
}

template <class... Ps>
inline void describe_params(void (*)(Ps...), ParamInfo* params) {
  int i = 0;
  (describe_param<Ps>(params[i++]), ...);
}

// ---------------------------------------------------------------------------------------------------------------
// The threadgroup scheduler.

inline void fiber_main(void* p) {
  Lane& lane = *static_cast<Lane*>(p);
  Group& g = *lane.group;
  g.dispatch->entry->lane_fn(lane);
  lane.state = LaneState::Done;
  switch_from(lane);
}

inline size_t fiber_stack_size() {
  static const size_t size = [] {
    const char* env = std::getenv("MPSKERNELS_EMULATOR_STACK_KB");
    long kb = env ? std::atol(env) : 64;
    return size_t(kb < 16 ? 16 : kb) * 1024;
  }();
  return size;
}

// Resolves every SIMD group's waiting collective; returns whether any lane became ready.
inline bool resolve_collectives(Group& g) {
  bool any = false;
  uint32_t num_simd = (g.num_lanes + kSimdWidth - 1) / kSimdWidth;
  for (uint32_t s = 0; s < num_simd && !g.failed; ++s) {
    SimdView view;
    view.first_index = s * kSimdWidth;
    Lane* first = nullptr;
    for (int l = 0; l < kSimdWidth; ++l) {
      uint32_t i = s * kSimdWidth + l;
      Lane* lane = (i < g.num_lanes && g.lanes[i].state == LaneState::Collective) ? &g.lanes[i] : nullptr;
      view.lanes[l] = lane;
      if (!lane) continue;
      if (!first) {
        first = lane;
      } else if (lane->resolver != first->resolver || lane->site.line != first->site.line ||
                 std::strcmp(lane->site.file, first->site.file) != 0) {
        char text[2048];
        std::snprintf(text, sizeof(text),
                      "%s:%u: kernel '%s' (threadgroup %u,%u,%u, SIMD group %u): divergent SIMD collective: some lanes "
                      "wait at %s here, others at %s (%s:%u); lanes of a SIMD group must reach the same collective",
                      first->site.file, first->site.line, g.dispatch->entry->host_name, g.id[0], g.id[1], g.id[2], s,
                      first->op_name, lane->op_name, lane->site.file, lane->site.line);
        record_error(*g.dispatch, text);
        g.failed = true;
        return false;
      }
    }
    if (!first) continue;
    first->resolver(view);
    if (g.failed) return false;
    for (int l = 0; l < kSimdWidth; ++l)
      if (view.lanes[l]) view.lanes[l]->state = LaneState::Ready;
    any = true;
  }
  return any;
}

inline void shuffle_order(std::vector<uint32_t>& order, uint64_t& rng) {
  for (size_t i = order.size(); i > 1; --i) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    std::swap(order[i - 1], order[rng % i]);
  }
}

inline void schedule_fibers(Group& g);

// A fault on a fiber's guard page (a thread overflowed its stack) becomes a kernel error instead of killing the
// process: a SIGSEGV handler, running on an alternate signal stack, jumps back to the worker. Faults anywhere
// else go to the handler that was installed before (Python's faulthandler, or the default action).
namespace overflow {
inline thread_local sigjmp_buf* recovery = nullptr;
inline thread_local const StackRegion* region = nullptr;
inline thread_local const ShadowBuffers* buffers = nullptr;
inline thread_local const ThreadgroupGuards* threadgroup = nullptr;
inline thread_local int fault_buffer = -1;  // set before jumping: which buffer, and where
inline thread_local const GuardedArray* fault_array = nullptr;  // or which threadgroup array
inline thread_local long long fault_offset = 0;
inline struct sigaction previous;

inline void on_fault(int sig, siginfo_t* info, void* context) {
  if (recovery && region && region->in_guard(info->si_addr)) {
    fault_buffer = -1;
    fault_array = nullptr;
    siglongjmp(*recovery, 1);
  }
  if (recovery && threadgroup) {
    if (const GuardedArray* array = threadgroup->locate(info->si_addr)) {
      fault_buffer = -1;
      fault_array = array;
      fault_offset = (long long)(static_cast<const unsigned char*>(info->si_addr) - array->data);
      siglongjmp(*recovery, 1);
    }
  }
  if (recovery && buffers) {
    long long offset = 0;
    int index = buffers->locate(info->si_addr, offset);
    if (index >= 0) {
      fault_buffer = index;
      fault_array = nullptr;
      fault_offset = offset;
      siglongjmp(*recovery, 1);
    }
  }
  if (previous.sa_flags & SA_SIGINFO) {
    previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);  // returning re-runs the faulting instruction, which now takes the default action
  }
}

inline void install_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_sigaction = &on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous);
  });
}

// An alternate signal stack for this thread while it runs fibers; the previous one is restored afterwards.
struct AltStack {
  stack_t old{};
  std::vector<char> memory = std::vector<char>(64 * 1024);
  AltStack() {
    stack_t mine{};
    mine.ss_sp = memory.data();
    mine.ss_size = memory.size();
    sigaltstack(&mine, &old);
  }
  ~AltStack() { sigaltstack(&old, nullptr); }
};
}  // namespace overflow

inline void report_out_of_bounds(Group& g, uint32_t lane, int buffer, long long offset) {
  char text[512];
  std::snprintf(text, sizeof(text),
                "kernel '%s' (threadgroup %u,%u,%u, thread %u): out-of-bounds access to [[buffer(%d)]] at byte "
                "offset %lld; the buffer holds %llu bytes",
                g.dispatch->entry->host_name, g.id[0], g.id[1], g.id[2], lane, buffer, offset,
                (unsigned long long)g.dispatch->args->buffer_sizes[buffer]);
  record_error(*g.dispatch, text);
  g.failed = true;
}

// "threadgroup array 'tile' (declared at f.metal:12)" or "[[threadgroup(1)]] 'scratch'".
inline void describe_threadgroup_array(const Group& g, const GuardedArray& array, char* out, size_t n) {
  const DispatchArgs& a = *g.dispatch->args;
  if (g.worker->guards->is_argument(&array)) {
    const char* name = a.threadgroup_arg_names ? a.threadgroup_arg_names[array.key] : nullptr;
    std::snprintf(out, n, "[[threadgroup(%d)]] '%s'", array.key, name ? name : "?");
  } else {
    const char* name = a.threadgroup_names ? a.threadgroup_names[array.key] : nullptr;
    std::snprintf(out, n, "threadgroup array '%s' (declared at %s:%u)", name ? name : "?", array.file, array.line);
  }
}

inline void report_threadgroup_fault(Group& g, uint32_t lane, const GuardedArray& array, long long offset) {
  char what[512], text[1024];
  describe_threadgroup_array(g, array, what, sizeof(what));
  std::snprintf(text, sizeof(text),
                "kernel '%s' (threadgroup %u,%u,%u, thread %u): out-of-bounds access to %s at byte offset %lld; "
                "it holds %zu bytes",
                g.dispatch->entry->host_name, g.id[0], g.id[1], g.id[2], lane, what, offset, array.size);
  record_error(*g.dispatch, text);
  g.failed = true;
}

// Red-zone check of every guarded threadgroup array: at each barrier (`where` is its site) and at the end of the
// threadgroup (`where` null). A damaged red zone means some lane wrote out of bounds since the last check.
inline void check_threadgroup_red_zones(Group& g, const Site* where) {
  const ThreadgroupGuards* guards = g.worker->guards.get();
  if (!guards || g.failed) return;
  for (int i = 0; i < guards->count; ++i) {
    long long first, last;
    if (guards->arrays[i].layout != g.guard_layout || !guards->arrays[i].damaged(first, last)) continue;
    char what[512], when[512], text[2048];
    describe_threadgroup_array(g, guards->arrays[i], what, sizeof(what));
    if (where)
      std::snprintf(when, sizeof(when), "found at the threadgroup_barrier at %s:%u", where->file, where->line);
    else
      std::snprintf(when, sizeof(when), "found at the end of the threadgroup");
    std::snprintf(text, sizeof(text),
                  "kernel '%s' (threadgroup %u,%u,%u): out-of-bounds write to %s at byte offset %lld (red zone "
                  "written at offsets %lld..%lld); it holds %zu bytes; %s",
                  g.dispatch->entry->host_name, g.id[0], g.id[1], g.id[2], what, first, first, last,
                  guards->arrays[i].size, when);
    record_error(*g.dispatch, text);
    g.failed = true;
    return;
  }
}

inline void report_stack_overflow(Group& g, uint32_t lane) {
  char text[512];
  std::snprintf(text, sizeof(text),
                "kernel '%s' (threadgroup %u,%u,%u, thread %u): stack overflow: the thread used more than the "
                "emulator's %zu KiB per-thread stack (large thread-local arrays?); set MPSKERNELS_EMULATOR_STACK_KB "
                "to raise it",
                g.dispatch->entry->host_name, g.id[0], g.id[1], g.id[2], lane, g.worker->stacks.stack_size / 1024);
  record_error(*g.dispatch, text);
  g.failed = true;
}

// After a fault on a guard page: which guard it was, reported as a kernel error.
inline void report_fault(Group& g, uint32_t lane) {
  if (overflow::fault_array)
    report_threadgroup_fault(g, lane, *overflow::fault_array, overflow::fault_offset);
  else if (overflow::fault_buffer >= 0)
    report_out_of_bounds(g, lane, overflow::fault_buffer, overflow::fault_offset);
  else
    report_stack_overflow(g, lane);
}

inline void run_group_with_fibers(Group& g) {
  Worker& w = *g.worker;
  const DispatchArgs& a = *g.dispatch->args;
  if (!w.stacks.reserve(a.group[0] * a.group[1] * a.group[2], fiber_stack_size())) {
    record_error(*g.dispatch, "emulator: could not map memory for fiber stacks");
    g.failed = true;
    return;
  }
  g.in_fiber_mode = true;
  for (uint32_t i = 0; i < g.num_lanes; ++i)
    fiber::init(g.lanes[i].ctx, w.stacks.stack(i), w.stacks.stack_size, &fiber_main, &g.lanes[i]);
  overflow::install_once();
  if (!w.alt_stack) w.alt_stack.reset(new overflow::AltStack());
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) == 0) {  // 1: restore the signal mask (SIGSEGV is blocked inside the handler)
    overflow::recovery = &jump;
    overflow::region = &w.stacks;
    schedule_fibers(g);
  } else {
    report_fault(g, detail::current_lane ? detail::current_lane->index : 0);
  }
  overflow::recovery = nullptr;
  overflow::region = nullptr;
}

inline void schedule_fibers(Group& g) {

  const DispatchArgs& a = *g.dispatch->args;
  std::vector<uint32_t>& order = g.order;
  order.resize(g.num_lanes);
  for (uint32_t i = 0; i < g.num_lanes; ++i) order[i] = i;
  bool shuffled = a.order_mode == kOrderShuffled;
  uint64_t rng = (a.seed ^ 0x9E3779B97F4A7C15ull) + 0x632BE59BD9B4E019ull * (1 + g.id[0] + 7919ull * g.id[1] +
                                                                              104729ull * g.id[2]);
  if (rng == 0) rng = 1;

  for (;;) {
    if (shuffled) shuffle_order(order, rng);
    g.cursor = 0;
    if (Lane* first = next_ready(g)) {
      detail::current_lane = first;
      fiber::swap(g.scheduler, first->ctx);  // returns when the pass is over (or a lane failed)
      if (g.failed) return;
    }
    if (resolve_collectives(g)) continue;
    if (g.failed) return;

    // Nothing is ready and no collective waits: every unfinished lane is at a barrier, or all are done.
    Lane* first = nullptr;
    for (uint32_t i = 0; i < g.num_lanes; ++i) {
      Lane& lane = g.lanes[i];
      if (lane.state != LaneState::Barrier) continue;
      if (!first) {
        first = &lane;
      } else if (lane.site.line != first->site.line || std::strcmp(lane.site.file, first->site.file) != 0) {
        char text[2048];
        std::snprintf(text, sizeof(text),
                      "%s:%u: kernel '%s' (threadgroup %u,%u,%u): barrier deadlock: thread %u waits at the "
                      "threadgroup_barrier here while thread %u waits at another one (%s:%u); a barrier must be reached "
                      "by every thread of the threadgroup (is it in divergent control flow?)",
                      first->site.file, first->site.line, g.dispatch->entry->host_name, g.id[0], g.id[1], g.id[2],
                      first->index, lane.index, lane.site.file, lane.site.line);
        record_error(*g.dispatch, text);
        g.failed = true;
        return;
      }
    }
    if (!first) return;  // every lane finished
    check_threadgroup_red_zones(g, &first->site);
    if (g.failed) return;
    for (uint32_t i = 0; i < g.num_lanes; ++i)
      if (g.lanes[i].state == LaneState::Barrier) g.lanes[i].state = LaneState::Ready;
  }
}

inline void run_group_plain(Group& g) {
  g.in_fiber_mode = false;
  if (setjmp(g.fast_path_exit) != 0) return;  // a lane failed: its error is recorded
  sigjmp_buf jump;
  if (overflow::buffers || overflow::threadgroup) {  // bounds checking: a fault on a guard page comes back here
    if (sigsetjmp(jump, 1) != 0) {
      overflow::recovery = nullptr;
      report_fault(g, detail::current_lane ? detail::current_lane->index : 0);
      return;
    }
    overflow::recovery = &jump;
  }
  LaneFn fn = g.dispatch->entry->lane_fn;
  for (uint32_t i = 0; i < g.num_lanes; ++i) {
    detail::current_lane = &g.lanes[i];
    fn(g.lanes[i]);
  }
  overflow::recovery = nullptr;
}

// Under bounds checking: [[threadgroup(i)]] arguments in guarded mappings (made, in both layouts, on the worker's
// first group), and the arrays of this group's layout poisoned again.
inline bool prepare_guarded_memory(Group& g) {
  const DispatchArgs& a = *g.dispatch->args;
  ThreadgroupGuards& guards = *g.worker->guards;
  if (guards.count == 0) {
    for (GuardLayout layout : {kEndAtGuard, kStartAtGuard})
      for (int i = 0; i < kMaxThreadgroupArgs; ++i)
        if (a.threadgroup_lengths[i] && !guards.add(i, a.threadgroup_lengths[i], layout)) return false;
    guards.first_declared = guards.count;
  }
  for (int i = 0; i < guards.first_declared; ++i)
    if (guards.arrays[i].layout == g.guard_layout) g.dynamic_ptrs[guards.arrays[i].key] = guards.arrays[i].data;
  guards.poison(g.guard_layout, kPoisonByte);
  return true;
}

inline void run_group(Group& g) {
  const DispatchArgs& a = *g.dispatch->args;
  g.num_sites = 0;
  g.failed = false;
  uint32_t off = 0;
  for (int i = 0; i < kMaxThreadgroupArgs; ++i) {
    g.dynamic_ptrs[i] = g.worker->arena + off;
    off += (a.threadgroup_lengths[i] + 15) / 16 * 16;
  }
  g.dynamic_bytes = off;
  g.arena_used = off;
  // Threadgroup memory starts poisoned, so a kernel that reads before writing sees NaN / -1, not stale data.
  if (!g.worker->guards) {
    std::memset(g.worker->arena, kPoisonByte, sizeof(g.worker->arena));
  } else if (!prepare_guarded_memory(g)) {
    record_error(*g.dispatch, "emulator: could not map guarded threadgroup memory");
    g.failed = true;
    return;
  }
  uint32_t n = 0;
  for (uint32_t z = 0; z < g.size[2]; ++z)
    for (uint32_t y = 0; y < g.size[1]; ++y)
      for (uint32_t x = 0; x < g.size[0]; ++x) {
        Lane& lane = g.lanes[n];
        lane.group = &g;
        lane.state = LaneState::Ready;
        lane.index = n;
        lane.local[0] = x;
        lane.local[1] = y;
        lane.local[2] = z;
        ++n;
      }
  if (g.dispatch->entry->uses_fibers)
    run_group_with_fibers(g);
  else
    run_group_plain(g);
  check_threadgroup_red_zones(g, nullptr);
}

inline void worker_loop(Dispatch& d, std::atomic<uint64_t>& next) {
  const DispatchArgs& a = *d.args;
  std::unique_ptr<Worker> w(new Worker());
  w->lanes.resize(a.group[0] * a.group[1] * a.group[2]);
  Group g;
  g.dispatch = &d;
  g.worker = w.get();
  g.lanes = w->lanes.data();
  if (a.bounds_check) w->guards.reset(new ThreadgroupGuards());
  overflow::buffers = d.shadows;
  overflow::threadgroup = w->guards.get();
  for (;;) {
    uint64_t k = next.fetch_add(1);
    if (k >= d.num_groups || d.failed) break;
    g.id[0] = uint32_t(k % d.groups[0]);
    g.id[1] = uint32_t(k / d.groups[0] % d.groups[1]);
    g.id[2] = uint32_t(k / (uint64_t(d.groups[0]) * d.groups[1]));
    g.guard_layout = (k & 1) ? kStartAtGuard : kEndAtGuard;
    g.num_lanes = 1;
    for (int i = 0; i < 3; ++i) {
      uint32_t start = g.id[i] * a.group[i];
      uint32_t left = a.grid[i] - start;
      g.size[i] = left < a.group[i] ? left : a.group[i];  // edge threadgroups are smaller (non-uniform)
      g.num_lanes *= g.size[i];
    }
    run_group(g);
  }
  detail::current_lane = nullptr;
  overflow::buffers = nullptr;
  overflow::threadgroup = nullptr;
}

inline int dispatch(const Entry& entry, DispatchArgs* a) {
  a->error[0] = '\0';
  uint64_t group_threads = uint64_t(a->group[0]) * a->group[1] * a->group[2];
  if (group_threads == 0 || group_threads > kMaxThreadsPerGroup) {
    std::snprintf(a->error, sizeof(a->error),
                  "kernel '%s': threadgroup size %ux%ux%u = %llu threads; it must be between 1 and %u", entry.host_name,
                  a->group[0], a->group[1], a->group[2], (unsigned long long)group_threads, kMaxThreadsPerGroup);
    return 1;
  }
  // [[threadgroup(n)]] arguments alone may exceed the limit (tg_alloc checks only when a kernel declares arrays);
  // they must also fit the worker's arena, so check them before any group runs.
  uint64_t dynamic_bytes = 0;
  for (int i = 0; i < kMaxThreadgroupArgs; ++i) dynamic_bytes += (a->threadgroup_lengths[i] + 15ull) / 16 * 16;
  if (dynamic_bytes > kMaxThreadgroupMemory) {
    std::snprintf(a->error, sizeof(a->error),
                  "kernel '%s': threadgroup memory exceeds 32 KiB: %llu bytes of [[threadgroup]] arguments",
                  entry.host_name, (unsigned long long)dynamic_bytes);
    return 1;
  }
  Dispatch d;
  d.entry = &entry;
  d.args = a;
  d.num_groups = 1;
  for (int i = 0; i < 3; ++i) {
    d.groups[i] = (a->grid[i] + a->group[i] - 1) / a->group[i];
    d.num_groups *= d.groups[i];
  }
  if (d.num_groups == 0) return 0;
  ShadowBuffers shadows;
  if (a->bounds_check) {
    overflow::install_once();
    if (!shadows.install(*a)) {
      shadows.restore(*a);
      std::snprintf(a->error, sizeof(a->error), "kernel '%s': could not map guarded buffer copies",
                    entry.host_name);
      return 1;
    }
    d.shadows = &shadows;
  }
  uint64_t workers = a->workers ? a->workers : std::thread::hardware_concurrency();
  if (workers == 0) workers = 1;
  if (workers > d.num_groups) workers = d.num_groups;
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> threads;
  for (uint64_t i = 1; i < workers; ++i) threads.emplace_back([&] { worker_loop(d, next); });
  worker_loop(d, next);
  for (auto& t : threads) t.join();
  shadows.restore(*a);
  return d.failed ? 1 : 0;
}

}  // namespace mtl
