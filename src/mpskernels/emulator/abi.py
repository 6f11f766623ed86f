"""ctypes mirrors of the structs in csrc/emu/mtl/runtime.h (keep the two in step)."""

from __future__ import annotations

import ctypes

MAX_BUFFERS = 31
MAX_THREADGROUP_ARGS = 31

ROLE_BUFFER, ROLE_THREADGROUP, ROLE_BUILTIN = 0, 1, 2
KIND_OTHER, KIND_BOOL, KIND_SIGNED, KIND_UNSIGNED, KIND_FLOAT, KIND_HALF, KIND_BFLOAT = range(7)
KIND_NAMES = {
    KIND_OTHER: "struct", KIND_BOOL: "bool", KIND_SIGNED: "signed int", KIND_UNSIGNED: "unsigned int",
    KIND_FLOAT: "float", KIND_HALF: "half", KIND_BFLOAT: "bfloat",
}  # fmt: skip
ORDER_FIXED, ORDER_SHUFFLED = 0, 1


class ParamInfo(ctypes.Structure):
    _fields_ = [
        ("role", ctypes.c_int32),
        ("index", ctypes.c_int32),
        ("is_pointer", ctypes.c_int32),
        ("value_kind", ctypes.c_int32),
        ("value_size", ctypes.c_int64),
        ("elem_size", ctypes.c_int64),
    ]


class DispatchArgs(ctypes.Structure):
    _fields_ = [
        ("buffers", ctypes.c_void_p * MAX_BUFFERS),
        ("buffer_sizes", ctypes.c_uint64 * MAX_BUFFERS),
        ("threadgroup_lengths", ctypes.c_uint32 * MAX_THREADGROUP_ARGS),
        ("grid", ctypes.c_uint32 * 3),
        ("group", ctypes.c_uint32 * 3),
        ("order_mode", ctypes.c_uint32),
        ("workers", ctypes.c_uint32),
        ("seed", ctypes.c_uint64),
        ("bounds_check", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("threadgroup_names", ctypes.POINTER(ctypes.c_char_p)),  # by declaration site, in source order
        ("threadgroup_arg_names", ctypes.POINTER(ctypes.c_char_p)),  # by [[threadgroup(i)]] index
        ("error", ctypes.c_char * 2048),
    ]


def bind_library(lib: ctypes.CDLL) -> ctypes.CDLL:
    lib.mtl_entry_count.restype = ctypes.c_int
    lib.mtl_entry_name.restype = ctypes.c_char_p
    lib.mtl_entry_name.argtypes = [ctypes.c_int]
    lib.mtl_describe_params.restype = ctypes.c_int
    lib.mtl_describe_params.argtypes = [ctypes.c_int, ctypes.POINTER(ParamInfo)]
    lib.mtl_dispatch.restype = ctypes.c_int
    lib.mtl_dispatch.argtypes = [ctypes.c_int, ctypes.POINTER(DispatchArgs)]
    lib.mtl_fiber_implementation.restype = ctypes.c_char_p
    return lib
