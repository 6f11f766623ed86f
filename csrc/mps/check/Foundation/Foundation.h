// Stand-in for <Foundation/Foundation.h>: the declarations the bridge and PyTorch's MPS headers use (see ../README.md).
#pragma once

#include <objc/objc_standin.h>

typedef long NSInteger;
typedef unsigned long NSUInteger;

#define NS_OPTIONS(type, name) type name; enum : type
#define NS_ENUM(type, name) type name; enum : type

__attribute__((objc_root_class))
@interface NSObject
+ (instancetype)alloc;
+ (instancetype)new;
- (instancetype)init;
@end

@protocol NSObject
@end

@interface NSString : NSObject
+ (nullable instancetype)stringWithUTF8String:(const char* _Nonnull)nullTerminatedCString;
@property(nullable, readonly) const char* UTF8String;
@end

@interface NSError : NSObject
@property(readonly, copy) NSString* _Nonnull localizedDescription;
@end

@interface NSDictionary<KeyType, ObjectType> : NSObject
@end
