// Stand-in for <MetalPerformanceShaders/MetalPerformanceShaders.h>: what PyTorch's MPSStream.h names (see ../README.md).
#pragma once

#import <Metal/Metal.h>

@interface MPSCommandBuffer : NSObject <MTLCommandBuffer>
@end
