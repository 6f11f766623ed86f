// Instantiated the way the anchors' own .metal files are: a header from an include dir, a define from the caller.
#include "lane/scale.h"

template [[host_name("scale_add_float")]] [[kernel]] decltype(scale_add<float>) scale_add<float>;
template [[host_name("scale_add_half")]] [[kernel]] decltype(scale_add<half>) scale_add<half>;
