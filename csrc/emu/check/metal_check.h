// What a kernel sees in the address-space check (mpskernels.msl.address_spaces): declarations only, for clang++
// -fsyntax-only, with MSL's address spaces as clang address spaces. Not the emulator's shim.
//
// The emulator's shim cannot serve here: its vectors, half and bfloat are classes, and clang (in C++) will not call
// a member function -- a copy constructor, an operator, a conversion -- on an object in a non-default address
// space. So every type a kernel keeps in device, constant or threadgroup memory is a builtin one, as in Apple's
// compiler: vectors are ext_vector_type, half is _Float16, bfloat is __fp16 (a distinct 16-bit type that promotes
// to float; the check runs for an aarch64 target, where both exist). Functions are lenient templates: this check is
// about address spaces only, so anything else it accepts more freely than Apple's compiler.
#pragma once

#define MTL_AS_DEVICE __attribute__((address_space(1)))
#define MTL_AS_CONSTANT __attribute__((address_space(2)))
#define MTL_AS_THREADGROUP __attribute__((address_space(3)))

#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))
#define HUGE_VALF (__builtin_huge_valf())
#define MAXFLOAT 3.40282347e+38F
#define FLT_MAX 3.40282347e+38F
#define FLT_MIN 1.17549435e-38F
#define FLT_EPSILON 1.1920929e-7F
#define HALF_MAX 65504.0f
#define M_E_F 2.71828182845904523536028747135266250f
#define M_LOG2E_F 1.44269504088896340735992468100189214f
#define M_LOG10E_F 0.434294481903251827651128918916605082f
#define M_LN2_F 0.693147180559945309417232121458176568f
#define M_LN10_F 2.30258509299404568401799145468436421f
#define M_PI_F 3.14159265358979323846264338327950288f
#define M_PI_2_F 1.57079632679489661923132169163975144f
#define M_PI_4_F 0.785398163397448309615660845819875721f
#define M_1_PI_F 0.318309886183790671537767526745028724f
#define M_2_PI_F 0.636619772367581343075535053490057448f
#define M_2_SQRTPI_F 1.12837916709551257389615890312154517f
#define M_SQRT2_F 1.41421356237309504880168872420969808f
#define M_SQRT1_2_F 0.707106781186547524400844362104849039f

typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long int64_t;
typedef unsigned long uint64_t;
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef _Float16 half;
typedef __fp16 bfloat;

namespace metal {

template <class T, int N> using vec = T __attribute__((ext_vector_type(N)));
template <class T, int N> using packed_vec = T __attribute__((ext_vector_type(N)));

#define MTL_CHECK_VECTORS(T, name)                                                                              \
  typedef T name##2 __attribute__((ext_vector_type(2)));                                                        \
  typedef T name##3 __attribute__((ext_vector_type(3)));                                                        \
  typedef T name##4 __attribute__((ext_vector_type(4)));                                                        \
  typedef T packed_##name##2 __attribute__((ext_vector_type(2)));                                               \
  typedef T packed_##name##3 __attribute__((ext_vector_type(3)));                                               \
  typedef T packed_##name##4 __attribute__((ext_vector_type(4)));
MTL_CHECK_VECTORS(float, float)
MTL_CHECK_VECTORS(half, half)
MTL_CHECK_VECTORS(bfloat, bfloat)
MTL_CHECK_VECTORS(int, int)
MTL_CHECK_VECTORS(uint, uint)
MTL_CHECK_VECTORS(short, short)
MTL_CHECK_VECTORS(ushort, ushort)
MTL_CHECK_VECTORS(char, char)
MTL_CHECK_VECTORS(uchar, uchar)
MTL_CHECK_VECTORS(long, long)
MTL_CHECK_VECTORS(ulong, ulong)
MTL_CHECK_VECTORS(signed char, bool)  // clang has no bool vectors; a distinct element type stands in
#undef MTL_CHECK_VECTORS

// `float4(h)`, `float4(a, b, c, d)`, `float4(xy, z, w)`: the check rewrites vector constructors to this.
template <class V, class... A> V make_vector(A...);

template <class T, int C, int R> struct matrix {
  vec<T, R> columns[C];
  template <class... A> matrix(A...);
  vec<T, R>& operator[](int);
  const vec<T, R>& operator[](int) const;
};
#define MTL_CHECK_MATRICES(T)                                                                                   \
  typedef matrix<T, 2, 2> T##2x2; typedef matrix<T, 2, 3> T##2x3; typedef matrix<T, 2, 4> T##2x4;              \
  typedef matrix<T, 3, 2> T##3x2; typedef matrix<T, 3, 3> T##3x3; typedef matrix<T, 3, 4> T##3x4;              \
  typedef matrix<T, 4, 2> T##4x2; typedef matrix<T, 4, 3> T##4x3; typedef matrix<T, 4, 4> T##4x4;
MTL_CHECK_MATRICES(float)
MTL_CHECK_MATRICES(half)
#undef MTL_CHECK_MATRICES
template <class A, class B> auto operator*(const matrix<A, 2, 2>&, B) -> B;
template <class T, int C, int R> T determinant(const matrix<T, C, R>&);
template <class T, int C, int R> matrix<T, R, C> transpose(const matrix<T, C, R>&);

template <class T, size_t N> struct array {
  T elements[N];
  T& operator[](size_t);
  const T& operator[](size_t) const;
  constexpr size_t size() const { return N; }
};

// Type traits and limits.
template <class T> struct remove_cv { using type = T; };
template <class T> struct remove_cv<const T> { using type = T; };
template <class T> using remove_cv_t = typename remove_cv<T>::type;
template <class A, class B> struct is_same { static constexpr bool value = false; };
template <class A> struct is_same<A, A> { static constexpr bool value = true; };
template <class A, class B> constexpr bool is_same_v = is_same<A, B>::value;
template <class T> struct is_floating_point {
  static constexpr bool value = is_same_v<T, float> || is_same_v<T, half> || is_same_v<T, bfloat>;
};
template <class T> constexpr bool is_floating_point_v = is_floating_point<T>::value;
template <class T> constexpr bool is_integral_v = !is_floating_point_v<T>;
template <class T> constexpr bool is_signed_v = T(-1) < T(0);
template <class T> constexpr bool is_unsigned_v = !is_signed_v<T>;
template <bool B, class T = void> struct enable_if {};
template <class T> struct enable_if<true, T> { using type = T; };
template <bool B, class T = void> using enable_if_t = typename enable_if<B, T>::type;
template <bool B, class A, class C> struct conditional { using type = A; };
template <class A, class C> struct conditional<false, A, C> { using type = C; };
template <bool B, class A, class C> using conditional_t = typename conditional<B, A, C>::type;
template <class T> struct numeric_limits {
  static constexpr bool is_specialized = true;
  static constexpr T min() { return T(); }
  static constexpr T max() { return T(); }
  static constexpr T lowest() { return T(); }
  static constexpr T epsilon() { return T(); }
  static constexpr T infinity() { return T(); }
  static constexpr T quiet_NaN() { return T(); }
  static constexpr int digits = 0;
};
template <class To, class From> To as_type(From);

// A declared `threadgroup T x[N];` becomes a reference to this: clang constructs no object of class type (an
// atomic) in a non-default address space, and the check needs the storage only as a typed lvalue.
template <class T> T& threadgroup_storage();

// Synchronisation.
enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4, mem_threadgroup_imageblock = 8 };
inline mem_flags operator|(mem_flags, mem_flags);
void threadgroup_barrier(mem_flags);
void simdgroup_barrier(mem_flags);

// Math, integer, relational and geometric functions: the result has the first argument's type (by value, so in
// the thread address space), except where noted.
#define MTL_CHECK_LIKE_FIRST(name) template <class T, class... R> T name(T, R...);
#define MTL_CHECK_FUNCTIONS(X)                                                                                  \
  X(abs) X(fabs) X(acos) X(acosh) X(asin) X(asinh) X(atan) X(atan2) X(atanh) X(ceil) X(copysign) X(cos) X(cosh)  \
  X(cospi) X(divide) X(erf) X(erfc) X(exp) X(exp2) X(exp10) X(fdim) X(floor) X(fma) X(fmax) X(fmax3) X(fmin)   \
  X(fmin3) X(fmod) X(fract) X(ldexp) X(log) X(log2) X(log10) X(max) X(max3) X(min) X(min3) X(pow) X(powr)      \
  X(rint) X(round) X(rsqrt) X(sin) X(sinh) X(sinpi) X(sqrt) X(tan) X(tanh) X(tanpi) X(trunc) X(clamp) X(mix)   \
  X(saturate) X(sign) X(step) X(smoothstep) X(select) X(normalize) X(cross) X(absdiff) X(addsat) X(subsat)     \
  X(clz) X(ctz) X(popcount) X(reverse_bits) X(extract_bits) X(insert_bits) X(hadd) X(rhadd) X(mulhi) X(mad24)  \
  X(mul24) X(rotate) X(median3) X(nextafter) X(frexp) X(modf)
MTL_CHECK_FUNCTIONS(MTL_CHECK_LIKE_FIRST)
template <class T> auto dot(T a, T b) -> decltype(a.x * b.x);
template <class T> auto length(T a) -> decltype(a.x * a.x);
template <class T> auto length_squared(T a) -> decltype(a.x * a.x);
template <class T> auto distance(T a, T b) -> decltype(a.x * b.x);
template <class T> bool isnan(T);
template <class T> bool isinf(T);
template <class T> bool isfinite(T);
template <class T> bool signbit(T);
template <class T> bool all(T);
template <class T> bool any(T);
namespace precise { MTL_CHECK_FUNCTIONS(MTL_CHECK_LIKE_FIRST) }
namespace fast { MTL_CHECK_FUNCTIONS(MTL_CHECK_LIKE_FIRST) }

// SIMD-group and quad-group functions.
struct simd_vote {
  typedef ulong vote_t;
  explicit operator bool() const;
  explicit operator ulong() const;
  bool all() const;
  bool any() const;
};
struct quad_vote {
  typedef ushort vote_t;
  explicit operator bool() const;
  explicit operator ushort() const;
  bool all() const;
  bool any() const;
};
#define MTL_CHECK_SIMD(X)                                                                                       \
  X(simd_sum) X(simd_product) X(simd_min) X(simd_max) X(simd_and) X(simd_or) X(simd_xor)                        \
  X(simd_prefix_inclusive_sum) X(simd_prefix_exclusive_sum) X(simd_prefix_inclusive_product)                   \
  X(simd_prefix_exclusive_product) X(simd_shuffle) X(simd_shuffle_up) X(simd_shuffle_down) X(simd_shuffle_xor)  \
  X(simd_shuffle_rotate_up) X(simd_shuffle_rotate_down) X(simd_shuffle_and_fill_up)                             \
  X(simd_shuffle_and_fill_down) X(simd_broadcast) X(simd_broadcast_first)                                       \
  X(quad_sum) X(quad_product) X(quad_min) X(quad_max) X(quad_and) X(quad_or) X(quad_xor)                        \
  X(quad_prefix_inclusive_sum) X(quad_prefix_exclusive_sum) X(quad_prefix_inclusive_product)                   \
  X(quad_prefix_exclusive_product) X(quad_shuffle) X(quad_shuffle_up) X(quad_shuffle_down) X(quad_shuffle_xor)  \
  X(quad_shuffle_rotate_up) X(quad_shuffle_rotate_down) X(quad_shuffle_and_fill_up)                             \
  X(quad_shuffle_and_fill_down) X(quad_broadcast) X(quad_broadcast_first)
MTL_CHECK_SIMD(MTL_CHECK_LIKE_FIRST)
bool simd_all(bool);
bool simd_any(bool);
simd_vote simd_ballot(bool);
simd_vote simd_active_threads_mask();
bool simd_is_first();
bool quad_all(bool);
bool quad_any(bool);
quad_vote quad_ballot(bool);
quad_vote quad_active_threads_mask();
bool quad_is_first();

// Atomics: operated on only through the functions below, which take a pointer of any address space (the pointee
// type is deduced with its address space).
enum memory_order { memory_order_relaxed, memory_order_acquire, memory_order_release, memory_order_acq_rel,
                    memory_order_seq_cst };
template <class T> struct atomic { T mtl_value; };
typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<float> atomic_float;
typedef atomic<bool> atomic_bool;
typedef atomic<ulong> atomic_ulong;
#define MTL_CHECK_ATOMIC_RMW(name) template <class A, class... R> auto name(A* object, R...)->decltype(+object->mtl_value);
MTL_CHECK_ATOMIC_RMW(atomic_load_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_exchange_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_fetch_add_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_fetch_sub_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_fetch_min_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_fetch_max_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_fetch_and_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_fetch_or_explicit)
MTL_CHECK_ATOMIC_RMW(atomic_fetch_xor_explicit)
template <class A, class... R> void atomic_store_explicit(A* object, R...);
// `expected` is a thread pointer: a device or threadgroup one is an error, as in MSL.
template <class A, class T, class... R> bool atomic_compare_exchange_weak_explicit(A* object, T* expected, R...);
template <class A, class T, class... R> bool atomic_compare_exchange_strong_explicit(A* object, T* expected, R...);

// simdgroup_matrix: thread objects; load and store take a pointer of any address space.
template <class T, int C, int R> struct simdgroup_matrix {
  simdgroup_matrix();
  template <class U> explicit simdgroup_matrix(U);
  vec<T, 2>& thread_elements();
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;
template <class T, int C, int R> simdgroup_matrix<T, C, R> make_filled_simdgroup_matrix(T);
template <class M, class P, class... R> void simdgroup_load(M&, P*, R...);
template <class M, class P, class... R> void simdgroup_store(const M&, P*, R...);
template <class D, class A, class B, class C> void simdgroup_multiply_accumulate(D&, const A&, const B&, const C&);
template <class D, class A, class B> void simdgroup_multiply(D&, const A&, const B&);
template <class T, int C, int R> simdgroup_matrix<T, C, R> operator*(const simdgroup_matrix<T, C, R>&,
                                                                       const simdgroup_matrix<T, C, R>&);
template <class T, int C, int R> simdgroup_matrix<T, C, R> operator+(const simdgroup_matrix<T, C, R>&,
                                                                       const simdgroup_matrix<T, C, R>&);
template <class T, int C, int R> simdgroup_matrix<T, C, R> operator-(const simdgroup_matrix<T, C, R>&,
                                                                       const simdgroup_matrix<T, C, R>&);

}  // namespace metal

namespace std = metal;  // MSL's metal:: is spelled std:: by some kernels
