// Fibers: one per emulated GPU thread, switched cooperatively by the threadgroup scheduler.
//
// On x86-64 (System V) a ten-instruction assembly switch saves only the callee-saved registers; it costs a few
// nanoseconds, against ~500 ns for swapcontext (which makes a signal-mask syscall on every switch). Everywhere
// else, or with MTL_FIBER_UCONTEXT defined, the portable <ucontext.h> fallback is used.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && defined(__ELF__) && !defined(MTL_FIBER_UCONTEXT)
#define MTL_FIBER_ASM 1
#else
#include <ucontext.h>
#endif

namespace mtl {
namespace fiber {

using EntryFn = void (*)(void*);

#if defined(MTL_FIBER_ASM)

struct Context {
  void* sp = nullptr;
};

extern "C" void mtl_fiber_switch(void** save_sp, void* load_sp);
extern "C" void mtl_fiber_trampoline();

// The switch pushes the callee-saved registers, stores the stack pointer, loads the other one and pops the same
// frame from it. The SSE/x87 control words are not switched: kernels cannot change rounding modes. A fresh fiber's frame "returns" into the trampoline, which
// calls fn(arg) with r12 = arg and rbx = fn.
asm(R"(
  .text
  .p2align 4
  .globl mtl_fiber_switch
  .hidden mtl_fiber_switch
  .type mtl_fiber_switch,@function
mtl_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mtl_fiber_switch,.-mtl_fiber_switch

  .p2align 4
  .globl mtl_fiber_trampoline
  .hidden mtl_fiber_trampoline
  .type mtl_fiber_trampoline,@function
mtl_fiber_trampoline:
  movq %r12, %rdi
  callq *%rbx
  ud2
  .size mtl_fiber_trampoline,.-mtl_fiber_trampoline
)");

inline void init(Context& ctx, void* stack_base, size_t stack_size, EntryFn fn, void* arg) {
  // Frame layout from low to high: r15, r14, r13, r12, rbx, rbp, return address. After `ret` pops the last
  // word, rsp must be 16-byte aligned so the trampoline's call sees the ABI's alignment.
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack_base) + stack_size) & ~uintptr_t(15);
  uint64_t* frame = reinterpret_cast<uint64_t*>(top - 56);
  frame[0] = 0;                                                 // r15
  frame[1] = 0;                                                 // r14
  frame[2] = 0;                                                 // r13
  frame[3] = reinterpret_cast<uint64_t>(arg);                   // r12
  frame[4] = reinterpret_cast<uint64_t>(fn);                    // rbx
  frame[5] = 0;                                                 // rbp
  frame[6] = reinterpret_cast<uint64_t>(&mtl_fiber_trampoline);
  ctx.sp = frame;
}

inline void swap(Context& from, Context& to) { mtl_fiber_switch(&from.sp, to.sp); }

inline const char* implementation() { return "x86-64 assembly"; }

#else  // portable fallback

struct Context {
  ucontext_t uc;
};

struct UcontextStart {
  static void run(unsigned hi, unsigned lo, unsigned fhi, unsigned flo) {
    void* arg = reinterpret_cast<void*>((uintptr_t(hi) << 32) | uintptr_t(lo));
    EntryFn fn = reinterpret_cast<EntryFn>((uintptr_t(fhi) << 32) | uintptr_t(flo));
    fn(arg);
  }
};

inline void init(Context& ctx, void* stack_base, size_t stack_size, EntryFn fn, void* arg) {
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack_base;
  ctx.uc.uc_stack.ss_size = stack_size;
  ctx.uc.uc_link = nullptr;
  uintptr_t a = reinterpret_cast<uintptr_t>(arg), f = reinterpret_cast<uintptr_t>(fn);
  // makecontext passes int-sized arguments only: split the pointers.
  makecontext(&ctx.uc, reinterpret_cast<void (*)()>(&UcontextStart::run), 4, unsigned(uint64_t(a) >> 32),
              unsigned(a & 0xffffffffu), unsigned(uint64_t(f) >> 32), unsigned(f & 0xffffffffu));
}

inline void swap(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

inline const char* implementation() { return "ucontext"; }

#endif

}  // namespace fiber
}  // namespace mtl
