// Stand-in for <dispatch/dispatch.h> (libdispatch): the declarations the bridge and PyTorch's MPS headers use.
#pragma once

typedef struct dispatch_queue_s* dispatch_queue_t;
typedef void (^dispatch_block_t)(void);

void dispatch_sync(dispatch_queue_t _Nonnull queue, dispatch_block_t _Nonnull block);
