// <metal_type_traits> and the fixed-width integer types for translated kernels. NVRTC has no C++ standard library,
// so the traits real Metal headers use (MLX's and PyTorch's: is_same_v, enable_if_t, conditional_t, the
// _disjunction/_conjunction helpers of Apple's headers, ...) are written out here, with Metal's extensions: half and
// bfloat are floating-point, and the floating-point and arithmetic traits hold for vectors of them too
// (is_floating_point_v<half2> is true in Metal).
#pragma once

#include "types.cuh"

typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long int64_t;
typedef unsigned long uint64_t;
typedef long intptr_t;
typedef unsigned long uintptr_t;
typedef long ptrdiff_t;

namespace metal {

template <class T, T V> struct integral_constant {
  static constexpr T value = V;
  typedef T value_type;
  typedef integral_constant type;
  constexpr operator value_type() const { return value; }
  constexpr value_type operator()() const { return value; }
};
template <bool B> using bool_constant = integral_constant<bool, B>;
typedef bool_constant<true> true_type;
typedef bool_constant<false> false_type;

template <class A, class B> struct is_same : false_type {};
template <class A> struct is_same<A, A> : true_type {};
template <class A, class B> constexpr bool is_same_v = is_same<A, B>::value;

template <bool B, class T = void> struct enable_if {};
template <class T> struct enable_if<true, T> { typedef T type; };
template <bool B, class T = void> using enable_if_t = typename enable_if<B, T>::type;

template <bool B, class T, class F> struct conditional { typedef T type; };
template <class T, class F> struct conditional<false, T, F> { typedef F type; };
template <bool B, class T, class F> using conditional_t = typename conditional<B, T, F>::type;

template <class T> struct remove_const { typedef T type; };
template <class T> struct remove_const<const T> { typedef T type; };
template <class T> struct remove_volatile { typedef T type; };
template <class T> struct remove_volatile<volatile T> { typedef T type; };
template <class T> struct remove_cv { typedef typename remove_const<typename remove_volatile<T>::type>::type type; };
template <class T> struct remove_reference { typedef T type; };
template <class T> struct remove_reference<T&> { typedef T type; };
template <class T> struct remove_reference<T&&> { typedef T type; };
template <class T> struct remove_pointer { typedef T type; };
template <class T> struct remove_pointer<T*> { typedef T type; };
template <class T> struct remove_pointer<T* const> { typedef T type; };
template <class T> struct remove_extent { typedef T type; };
template <class T> struct remove_extent<T[]> { typedef T type; };
template <class T, unsigned long N> struct remove_extent<T[N]> { typedef T type; };
template <class T> using remove_const_t = typename remove_const<T>::type;
template <class T> using remove_volatile_t = typename remove_volatile<T>::type;
template <class T> using remove_cv_t = typename remove_cv<T>::type;
template <class T> using remove_reference_t = typename remove_reference<T>::type;
template <class T> using remove_pointer_t = typename remove_pointer<T>::type;
template <class T> using remove_extent_t = typename remove_extent<T>::type;
template <class T> struct remove_cvref { typedef remove_cv_t<remove_reference_t<T>> type; };
template <class T> using remove_cvref_t = typename remove_cvref<T>::type;
// Address spaces are erased by the translation, so removing one is the identity.
template <class T> struct remove_addrspace { typedef T type; };
template <class T> using remove_addrspace_t = typename remove_addrspace<T>::type;

template <class T> struct add_const { typedef const T type; };
template <class T> struct add_volatile { typedef volatile T type; };
template <class T> struct add_cv { typedef const volatile T type; };
template <class T> struct add_pointer { typedef remove_reference_t<T>* type; };
template <class T> struct add_lvalue_reference { typedef T& type; };
template <class T> struct add_rvalue_reference { typedef T&& type; };
template <class T> using add_const_t = typename add_const<T>::type;
template <class T> using add_pointer_t = typename add_pointer<T>::type;

template <class T> typename add_rvalue_reference<T>::type declval() noexcept;

template <class T> struct is_const : false_type {};
template <class T> struct is_const<const T> : true_type {};
template <class T> struct is_volatile : false_type {};
template <class T> struct is_volatile<volatile T> : true_type {};
template <class T> struct is_pointer : false_type {};
template <class T> struct is_pointer<T*> : true_type {};
template <class T> struct is_pointer<T* const> : true_type {};
template <class T> struct is_reference : false_type {};
template <class T> struct is_reference<T&> : true_type {};
template <class T> struct is_reference<T&&> : true_type {};
template <class T> struct is_void : is_same<remove_cv_t<T>, void> {};
template <class T> struct is_class : bool_constant<__is_class(T)> {};
template <class T> struct is_enum : bool_constant<__is_enum(T)> {};
template <class B, class D> struct is_base_of : bool_constant<__is_base_of(B, D)> {};
template <class F, class T> struct is_convertible : bool_constant<__is_convertible_to(F, T)> {};
template <class T> struct is_trivially_copyable : bool_constant<__is_trivially_copyable(T)> {};
template <class T> struct underlying_type { typedef __underlying_type(T) type; };
template <class T> using underlying_type_t = typename underlying_type<T>::type;
template <class T> constexpr bool is_const_v = is_const<T>::value;
template <class T> constexpr bool is_pointer_v = is_pointer<T>::value;
template <class T> constexpr bool is_reference_v = is_reference<T>::value;
template <class T> constexpr bool is_void_v = is_void<T>::value;
template <class T> constexpr bool is_class_v = is_class<T>::value;
template <class T> constexpr bool is_enum_v = is_enum<T>::value;
template <class B, class D> constexpr bool is_base_of_v = is_base_of<B, D>::value;
template <class F, class T> constexpr bool is_convertible_v = is_convertible<F, T>::value;

template <class T> struct decay { typedef remove_cv_t<remove_reference_t<T>> type; };
template <class T> using decay_t = typename decay<T>::type;

// Apple's headers spell these with a leading underscore; real code (MLX) uses both spellings.
template <class... B> struct _disjunction : false_type {};
template <class B> struct _disjunction<B> : B {};
template <class B, class... R> struct _disjunction<B, R...> : conditional_t<bool(B::value), B, _disjunction<R...>> {};
template <class... B> struct _conjunction : true_type {};
template <class B> struct _conjunction<B> : B {};
template <class B, class... R> struct _conjunction<B, R...> : conditional_t<bool(B::value), _conjunction<R...>, B> {};
template <class... B> struct disjunction : _disjunction<B...> {};
template <class... B> struct conjunction : _conjunction<B...> {};
template <class B> struct negation : bool_constant<!bool(B::value)> {};
template <class... B> constexpr bool disjunction_v = disjunction<B...>::value;
template <class... B> constexpr bool conjunction_v = conjunction<B...>::value;
template <class B> constexpr bool negation_v = negation<B>::value;

template <class T> struct is_integral_base : false_type {};
#define MTL_INTEGRAL(T) template <> struct is_integral_base<T> : true_type {};
MTL_INTEGRAL(bool) MTL_INTEGRAL(char) MTL_INTEGRAL(signed char) MTL_INTEGRAL(unsigned char) MTL_INTEGRAL(short)
MTL_INTEGRAL(unsigned short) MTL_INTEGRAL(int) MTL_INTEGRAL(unsigned int) MTL_INTEGRAL(long)
MTL_INTEGRAL(unsigned long) MTL_INTEGRAL(long long) MTL_INTEGRAL(unsigned long long)
#undef MTL_INTEGRAL
template <class T> struct is_fp_base : false_type {};
template <> struct is_fp_base<float> : true_type {};
template <> struct is_fp_base<double> : true_type {};
template <> struct is_fp_base<mtl_half> : true_type {};
template <> struct is_fp_base<mtl_bfloat> : true_type {};
// Metal's vector types are integral / floating-point when their components are.
template <class T, int N> struct is_integral_base<::mtl::vec<T, N>> : is_integral_base<T> {};
template <class T, int N> struct is_fp_base<::mtl::vec<T, N>> : is_fp_base<T> {};

template <class T> struct is_integral : is_integral_base<remove_cv_t<T>> {};
template <class T> struct is_floating_point : is_fp_base<remove_cv_t<T>> {};
template <class T> struct is_arithmetic : bool_constant<is_integral<T>::value || is_floating_point<T>::value> {};
// A vector is integral or floating-point (above) but never a scalar: is_scalar tells the two apart, as in the emulator.
template <class T> struct is_scalar_base
    : bool_constant<is_integral_base<T>::value || is_fp_base<T>::value || is_pointer<T>::value || is_enum<T>::value> {};
template <class T, int N> struct is_scalar_base<::mtl::vec<T, N>> : false_type {};
template <class T> struct is_scalar : is_scalar_base<remove_cv_t<T>> {};
template <class T> struct is_signed_base : bool_constant<is_floating_point<T>::value> {};
#define MTL_SIGNED(T) template <> struct is_signed_base<T> : true_type {};
MTL_SIGNED(signed char) MTL_SIGNED(short) MTL_SIGNED(int) MTL_SIGNED(long) MTL_SIGNED(long long)
#undef MTL_SIGNED
template <> struct is_signed_base<char> : bool_constant<(char(-1) < char(0))> {};
template <class T, int N> struct is_signed_base<::mtl::vec<T, N>> : is_signed_base<T> {};
template <class T> struct is_signed : is_signed_base<remove_cv_t<T>> {};
template <class T> struct is_unsigned : bool_constant<is_integral<T>::value && !is_signed<T>::value> {};
template <class T> constexpr bool is_integral_v = is_integral<T>::value;
template <class T> constexpr bool is_floating_point_v = is_floating_point<T>::value;
template <class T> constexpr bool is_arithmetic_v = is_arithmetic<T>::value;
template <class T> constexpr bool is_scalar_v = is_scalar<T>::value;
template <class T> constexpr bool is_signed_v = is_signed<T>::value;
template <class T> constexpr bool is_unsigned_v = is_unsigned<T>::value;

template <class T> struct is_vector : false_type {};
template <class T, int N> struct is_vector<::mtl::vec<T, N>> : true_type {};
template <class T> struct is_vector<const T> : is_vector<T> {};
template <class T> constexpr bool is_vector_v = is_vector<T>::value;
template <class T> struct vec_elements : integral_constant<int, 1> {};
template <class T, int N> struct vec_elements<::mtl::vec<T, N>> : integral_constant<int, N> {};
template <class T> constexpr int vec_elements_v = vec_elements<T>::value;
template <class T> struct make_scalar { typedef T type; };
template <class T, int N> struct make_scalar<::mtl::vec<T, N>> { typedef T type; };
template <class T> using make_scalar_t = typename make_scalar<T>::type;

template <class T> struct make_unsigned;
template <class T> struct make_signed;
#define MTL_SIGN_PAIR(S, U)                                                          \
  template <> struct make_unsigned<S> { typedef U type; };                           \
  template <> struct make_unsigned<U> { typedef U type; };                           \
  template <> struct make_signed<S> { typedef S type; };                             \
  template <> struct make_signed<U> { typedef S type; };
MTL_SIGN_PAIR(signed char, unsigned char) MTL_SIGN_PAIR(short, unsigned short) MTL_SIGN_PAIR(int, unsigned int)
MTL_SIGN_PAIR(long, unsigned long) MTL_SIGN_PAIR(long long, unsigned long long)
#undef MTL_SIGN_PAIR
template <> struct make_unsigned<char> { typedef unsigned char type; };
template <> struct make_signed<char> { typedef signed char type; };
template <class T, int N> struct make_unsigned<::mtl::vec<T, N>> { typedef ::mtl::vec<typename make_unsigned<T>::type, N> type; };
template <class T, int N> struct make_signed<::mtl::vec<T, N>> { typedef ::mtl::vec<typename make_signed<T>::type, N> type; };
template <class T> using make_unsigned_t = typename make_unsigned<T>::type;
template <class T> using make_signed_t = typename make_signed<T>::type;

template <class T, T... I> struct integer_sequence {
  typedef T value_type;
  static constexpr unsigned long size() { return sizeof...(I); }
};
template <unsigned long... I> using index_sequence = integer_sequence<unsigned long, I...>;
namespace detail {
template <class T, long N, long... I> struct make_seq : make_seq<T, N - 1, N - 1, I...> {};
template <class T, long... I> struct make_seq<T, 0, I...> { typedef integer_sequence<T, T(I)...> type; };
}  // namespace detail
template <class T, T N> using make_integer_sequence = typename detail::make_seq<T, long(N)>::type;
template <unsigned long N> using make_index_sequence = make_integer_sequence<unsigned long, N>;

// <metal_array>: a fixed-size aggregate (brace-initialised like std::array).
template <class T, unsigned long N> struct array {
  T elems[N > 0 ? N : 1];
  constexpr T& operator[](unsigned long i) { return elems[i]; }
  constexpr const T& operator[](unsigned long i) const { return elems[i]; }
  static constexpr unsigned long size() { return N; }
  static constexpr bool empty() { return N == 0; }
  constexpr T* data() { return elems; }
  constexpr const T* data() const { return elems; }
  constexpr T* begin() { return elems; }
  constexpr const T* begin() const { return elems; }
  constexpr T* end() { return elems + N; }
  constexpr const T* end() const { return elems + N; }
  constexpr T& front() { return elems[0]; }
  constexpr const T& front() const { return elems[0]; }
  constexpr T& back() { return elems[N - 1]; }
  constexpr const T& back() const { return elems[N - 1]; }
};

}  // namespace metal
