// Stand-in for the Objective-C runtime declarations Foundation brings in (see ../README.md).
#pragma once

typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
#ifndef nil
#define nil nullptr
#endif
