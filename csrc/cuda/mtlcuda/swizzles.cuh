// Generated table (see types.cuh, "swizzles"): one union member per multi-component swizzle whose components form a
// contiguous range, for .xyzw and .rgba; a member not starting at x sits behind a pad array of the skipped components.
#pragma once

#define MTL_SWIZZLES_2 \
  MTL_SWIZZLE(0, 1, 0, 0) xx; \
  MTL_SWIZZLE(0, 2, 0, 1) xy; \
  MTL_SWIZZLE(0, 2, 1, 0) yx; \
  struct { T _at_yy[1]; MTL_SWIZZLE(1, 1, 1, 1) yy; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) xxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) xxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) xyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) xyy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) yxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) yxy; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) yyx; \
  struct { T _at_yyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) yyy; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) xxxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) xxxy; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) xxyx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) xxyy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) xyxx; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) xyxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) xyyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) xyyy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) yxxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) yxxy; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) yxyx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) yxyy; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) yyxx; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) yyxy; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) yyyx; \
  struct { T _at_yyyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) yyyy; }; \
  MTL_SWIZZLE(0, 1, 0, 0) rr; \
  MTL_SWIZZLE(0, 2, 0, 1) rg; \
  MTL_SWIZZLE(0, 2, 1, 0) gr; \
  struct { T _at_gg[1]; MTL_SWIZZLE(1, 1, 1, 1) gg; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) rrr; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) rrg; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) rgr; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) rgg; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) grr; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) grg; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) ggr; \
  struct { T _at_ggg[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) ggg; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) rrrr; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) rrrg; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) rrgr; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) rrgg; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) rgrr; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) rgrg; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) rggr; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) rggg; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) grrr; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) grrg; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) grgr; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) grgg; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) ggrr; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) ggrg; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) gggr; \
  struct { T _at_gggg[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) gggg; }; \

#define MTL_SWIZZLES_3 \
  MTL_SWIZZLE(0, 1, 0, 0) xx; \
  MTL_SWIZZLE(0, 2, 0, 1) xy; \
  MTL_SWIZZLE(0, 2, 1, 0) yx; \
  struct { T _at_yy[1]; MTL_SWIZZLE(1, 1, 1, 1) yy; }; \
  struct { T _at_yz[1]; MTL_SWIZZLE(1, 2, 1, 2) yz; }; \
  struct { T _at_zy[1]; MTL_SWIZZLE(1, 2, 2, 1) zy; }; \
  struct { T _at_zz[2]; MTL_SWIZZLE(2, 1, 2, 2) zz; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) xxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) xxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) xyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) xyy; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) xyz; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) xzy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) yxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) yxy; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) yxz; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) yyx; \
  struct { T _at_yyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) yyy; }; \
  struct { T _at_yyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2) yyz; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) yzx; \
  struct { T _at_yzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1) yzy; }; \
  struct { T _at_yzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2) yzz; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) zxy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) zyx; \
  struct { T _at_zyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1) zyy; }; \
  struct { T _at_zyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2) zyz; }; \
  struct { T _at_zzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1) zzy; }; \
  struct { T _at_zzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2) zzz; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) xxxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) xxxy; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) xxyx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) xxyy; \
  MTL_SWIZZLE(0, 3, 0, 0, 1, 2) xxyz; \
  MTL_SWIZZLE(0, 3, 0, 0, 2, 1) xxzy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) xyxx; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) xyxy; \
  MTL_SWIZZLE(0, 3, 0, 1, 0, 2) xyxz; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) xyyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) xyyy; \
  MTL_SWIZZLE(0, 3, 0, 1, 1, 2) xyyz; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 0) xyzx; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 1) xyzy; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 2) xyzz; \
  MTL_SWIZZLE(0, 3, 0, 2, 0, 1) xzxy; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 0) xzyx; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 1) xzyy; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 2) xzyz; \
  MTL_SWIZZLE(0, 3, 0, 2, 2, 1) xzzy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) yxxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) yxxy; \
  MTL_SWIZZLE(0, 3, 1, 0, 0, 2) yxxz; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) yxyx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) yxyy; \
  MTL_SWIZZLE(0, 3, 1, 0, 1, 2) yxyz; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 0) yxzx; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 1) yxzy; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 2) yxzz; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) yyxx; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) yyxy; \
  MTL_SWIZZLE(0, 3, 1, 1, 0, 2) yyxz; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) yyyx; \
  struct { T _at_yyyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) yyyy; }; \
  struct { T _at_yyyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 1, 2) yyyz; }; \
  MTL_SWIZZLE(0, 3, 1, 1, 2, 0) yyzx; \
  struct { T _at_yyzy[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 1) yyzy; }; \
  struct { T _at_yyzz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 2) yyzz; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 0) yzxx; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 1) yzxy; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 2) yzxz; \
  MTL_SWIZZLE(0, 3, 1, 2, 1, 0) yzyx; \
  struct { T _at_yzyy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 1) yzyy; }; \
  struct { T _at_yzyz[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 2) yzyz; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 2, 0) yzzx; \
  struct { T _at_yzzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 1) yzzy; }; \
  struct { T _at_yzzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 2) yzzz; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 0, 1) zxxy; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 0) zxyx; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 1) zxyy; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 2) zxyz; \
  MTL_SWIZZLE(0, 3, 2, 0, 2, 1) zxzy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 0) zyxx; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 1) zyxy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 2) zyxz; \
  MTL_SWIZZLE(0, 3, 2, 1, 1, 0) zyyx; \
  struct { T _at_zyyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 1) zyyy; }; \
  struct { T _at_zyyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 2) zyyz; }; \
  MTL_SWIZZLE(0, 3, 2, 1, 2, 0) zyzx; \
  struct { T _at_zyzy[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 1) zyzy; }; \
  struct { T _at_zyzz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 2) zyzz; }; \
  MTL_SWIZZLE(0, 3, 2, 2, 0, 1) zzxy; \
  MTL_SWIZZLE(0, 3, 2, 2, 1, 0) zzyx; \
  struct { T _at_zzyy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 1) zzyy; }; \
  struct { T _at_zzyz[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 2) zzyz; }; \
  struct { T _at_zzzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 2, 1) zzzy; }; \
  struct { T _at_zzzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2, 2) zzzz; }; \
  MTL_SWIZZLE(0, 1, 0, 0) rr; \
  MTL_SWIZZLE(0, 2, 0, 1) rg; \
  MTL_SWIZZLE(0, 2, 1, 0) gr; \
  struct { T _at_gg[1]; MTL_SWIZZLE(1, 1, 1, 1) gg; }; \
  struct { T _at_gb[1]; MTL_SWIZZLE(1, 2, 1, 2) gb; }; \
  struct { T _at_bg[1]; MTL_SWIZZLE(1, 2, 2, 1) bg; }; \
  struct { T _at_bb[2]; MTL_SWIZZLE(2, 1, 2, 2) bb; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) rrr; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) rrg; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) rgr; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) rgg; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) rgb; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) rbg; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) grr; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) grg; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) grb; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) ggr; \
  struct { T _at_ggg[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) ggg; }; \
  struct { T _at_ggb[1]; MTL_SWIZZLE(1, 2, 1, 1, 2) ggb; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) gbr; \
  struct { T _at_gbg[1]; MTL_SWIZZLE(1, 2, 1, 2, 1) gbg; }; \
  struct { T _at_gbb[1]; MTL_SWIZZLE(1, 2, 1, 2, 2) gbb; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) brg; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) bgr; \
  struct { T _at_bgg[1]; MTL_SWIZZLE(1, 2, 2, 1, 1) bgg; }; \
  struct { T _at_bgb[1]; MTL_SWIZZLE(1, 2, 2, 1, 2) bgb; }; \
  struct { T _at_bbg[1]; MTL_SWIZZLE(1, 2, 2, 2, 1) bbg; }; \
  struct { T _at_bbb[2]; MTL_SWIZZLE(2, 1, 2, 2, 2) bbb; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) rrrr; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) rrrg; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) rrgr; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) rrgg; \
  MTL_SWIZZLE(0, 3, 0, 0, 1, 2) rrgb; \
  MTL_SWIZZLE(0, 3, 0, 0, 2, 1) rrbg; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) rgrr; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) rgrg; \
  MTL_SWIZZLE(0, 3, 0, 1, 0, 2) rgrb; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) rggr; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) rggg; \
  MTL_SWIZZLE(0, 3, 0, 1, 1, 2) rggb; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 0) rgbr; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 1) rgbg; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 2) rgbb; \
  MTL_SWIZZLE(0, 3, 0, 2, 0, 1) rbrg; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 0) rbgr; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 1) rbgg; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 2) rbgb; \
  MTL_SWIZZLE(0, 3, 0, 2, 2, 1) rbbg; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) grrr; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) grrg; \
  MTL_SWIZZLE(0, 3, 1, 0, 0, 2) grrb; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) grgr; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) grgg; \
  MTL_SWIZZLE(0, 3, 1, 0, 1, 2) grgb; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 0) grbr; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 1) grbg; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 2) grbb; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) ggrr; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) ggrg; \
  MTL_SWIZZLE(0, 3, 1, 1, 0, 2) ggrb; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) gggr; \
  struct { T _at_gggg[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) gggg; }; \
  struct { T _at_gggb[1]; MTL_SWIZZLE(1, 2, 1, 1, 1, 2) gggb; }; \
  MTL_SWIZZLE(0, 3, 1, 1, 2, 0) ggbr; \
  struct { T _at_ggbg[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 1) ggbg; }; \
  struct { T _at_ggbb[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 2) ggbb; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 0) gbrr; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 1) gbrg; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 2) gbrb; \
  MTL_SWIZZLE(0, 3, 1, 2, 1, 0) gbgr; \
  struct { T _at_gbgg[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 1) gbgg; }; \
  struct { T _at_gbgb[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 2) gbgb; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 2, 0) gbbr; \
  struct { T _at_gbbg[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 1) gbbg; }; \
  struct { T _at_gbbb[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 2) gbbb; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 0, 1) brrg; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 0) brgr; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 1) brgg; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 2) brgb; \
  MTL_SWIZZLE(0, 3, 2, 0, 2, 1) brbg; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 0) bgrr; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 1) bgrg; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 2) bgrb; \
  MTL_SWIZZLE(0, 3, 2, 1, 1, 0) bggr; \
  struct { T _at_bggg[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 1) bggg; }; \
  struct { T _at_bggb[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 2) bggb; }; \
  MTL_SWIZZLE(0, 3, 2, 1, 2, 0) bgbr; \
  struct { T _at_bgbg[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 1) bgbg; }; \
  struct { T _at_bgbb[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 2) bgbb; }; \
  MTL_SWIZZLE(0, 3, 2, 2, 0, 1) bbrg; \
  MTL_SWIZZLE(0, 3, 2, 2, 1, 0) bbgr; \
  struct { T _at_bbgg[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 1) bbgg; }; \
  struct { T _at_bbgb[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 2) bbgb; }; \
  struct { T _at_bbbg[1]; MTL_SWIZZLE(1, 2, 2, 2, 2, 1) bbbg; }; \
  struct { T _at_bbbb[2]; MTL_SWIZZLE(2, 1, 2, 2, 2, 2) bbbb; }; \

#define MTL_SWIZZLES_4 \
  MTL_SWIZZLE(0, 1, 0, 0) xx; \
  MTL_SWIZZLE(0, 2, 0, 1) xy; \
  MTL_SWIZZLE(0, 2, 1, 0) yx; \
  struct { T _at_yy[1]; MTL_SWIZZLE(1, 1, 1, 1) yy; }; \
  struct { T _at_yz[1]; MTL_SWIZZLE(1, 2, 1, 2) yz; }; \
  struct { T _at_zy[1]; MTL_SWIZZLE(1, 2, 2, 1) zy; }; \
  struct { T _at_zz[2]; MTL_SWIZZLE(2, 1, 2, 2) zz; }; \
  struct { T _at_zw[2]; MTL_SWIZZLE(2, 2, 2, 3) zw; }; \
  struct { T _at_wz[2]; MTL_SWIZZLE(2, 2, 3, 2) wz; }; \
  struct { T _at_ww[3]; MTL_SWIZZLE(3, 1, 3, 3) ww; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) xxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) xxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) xyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) xyy; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) xyz; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) xzy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) yxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) yxy; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) yxz; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) yyx; \
  struct { T _at_yyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) yyy; }; \
  struct { T _at_yyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2) yyz; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) yzx; \
  struct { T _at_yzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1) yzy; }; \
  struct { T _at_yzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2) yzz; }; \
  struct { T _at_yzw[1]; MTL_SWIZZLE(1, 3, 1, 2, 3) yzw; }; \
  struct { T _at_ywz[1]; MTL_SWIZZLE(1, 3, 1, 3, 2) ywz; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) zxy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) zyx; \
  struct { T _at_zyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1) zyy; }; \
  struct { T _at_zyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2) zyz; }; \
  struct { T _at_zyw[1]; MTL_SWIZZLE(1, 3, 2, 1, 3) zyw; }; \
  struct { T _at_zzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1) zzy; }; \
  struct { T _at_zzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2) zzz; }; \
  struct { T _at_zzw[2]; MTL_SWIZZLE(2, 2, 2, 2, 3) zzw; }; \
  struct { T _at_zwy[1]; MTL_SWIZZLE(1, 3, 2, 3, 1) zwy; }; \
  struct { T _at_zwz[2]; MTL_SWIZZLE(2, 2, 2, 3, 2) zwz; }; \
  struct { T _at_zww[2]; MTL_SWIZZLE(2, 2, 2, 3, 3) zww; }; \
  struct { T _at_wyz[1]; MTL_SWIZZLE(1, 3, 3, 1, 2) wyz; }; \
  struct { T _at_wzy[1]; MTL_SWIZZLE(1, 3, 3, 2, 1) wzy; }; \
  struct { T _at_wzz[2]; MTL_SWIZZLE(2, 2, 3, 2, 2) wzz; }; \
  struct { T _at_wzw[2]; MTL_SWIZZLE(2, 2, 3, 2, 3) wzw; }; \
  struct { T _at_wwz[2]; MTL_SWIZZLE(2, 2, 3, 3, 2) wwz; }; \
  struct { T _at_www[3]; MTL_SWIZZLE(3, 1, 3, 3, 3) www; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) xxxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) xxxy; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) xxyx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) xxyy; \
  MTL_SWIZZLE(0, 3, 0, 0, 1, 2) xxyz; \
  MTL_SWIZZLE(0, 3, 0, 0, 2, 1) xxzy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) xyxx; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) xyxy; \
  MTL_SWIZZLE(0, 3, 0, 1, 0, 2) xyxz; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) xyyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) xyyy; \
  MTL_SWIZZLE(0, 3, 0, 1, 1, 2) xyyz; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 0) xyzx; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 1) xyzy; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 2) xyzz; \
  MTL_SWIZZLE(0, 4, 0, 1, 2, 3) xyzw; \
  MTL_SWIZZLE(0, 4, 0, 1, 3, 2) xywz; \
  MTL_SWIZZLE(0, 3, 0, 2, 0, 1) xzxy; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 0) xzyx; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 1) xzyy; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 2) xzyz; \
  MTL_SWIZZLE(0, 4, 0, 2, 1, 3) xzyw; \
  MTL_SWIZZLE(0, 3, 0, 2, 2, 1) xzzy; \
  MTL_SWIZZLE(0, 4, 0, 2, 3, 1) xzwy; \
  MTL_SWIZZLE(0, 4, 0, 3, 1, 2) xwyz; \
  MTL_SWIZZLE(0, 4, 0, 3, 2, 1) xwzy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) yxxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) yxxy; \
  MTL_SWIZZLE(0, 3, 1, 0, 0, 2) yxxz; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) yxyx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) yxyy; \
  MTL_SWIZZLE(0, 3, 1, 0, 1, 2) yxyz; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 0) yxzx; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 1) yxzy; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 2) yxzz; \
  MTL_SWIZZLE(0, 4, 1, 0, 2, 3) yxzw; \
  MTL_SWIZZLE(0, 4, 1, 0, 3, 2) yxwz; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) yyxx; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) yyxy; \
  MTL_SWIZZLE(0, 3, 1, 1, 0, 2) yyxz; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) yyyx; \
  struct { T _at_yyyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) yyyy; }; \
  struct { T _at_yyyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 1, 2) yyyz; }; \
  MTL_SWIZZLE(0, 3, 1, 1, 2, 0) yyzx; \
  struct { T _at_yyzy[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 1) yyzy; }; \
  struct { T _at_yyzz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 2) yyzz; }; \
  struct { T _at_yyzw[1]; MTL_SWIZZLE(1, 3, 1, 1, 2, 3) yyzw; }; \
  struct { T _at_yywz[1]; MTL_SWIZZLE(1, 3, 1, 1, 3, 2) yywz; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 0) yzxx; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 1) yzxy; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 2) yzxz; \
  MTL_SWIZZLE(0, 4, 1, 2, 0, 3) yzxw; \
  MTL_SWIZZLE(0, 3, 1, 2, 1, 0) yzyx; \
  struct { T _at_yzyy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 1) yzyy; }; \
  struct { T _at_yzyz[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 2) yzyz; }; \
  struct { T _at_yzyw[1]; MTL_SWIZZLE(1, 3, 1, 2, 1, 3) yzyw; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 2, 0) yzzx; \
  struct { T _at_yzzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 1) yzzy; }; \
  struct { T _at_yzzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 2) yzzz; }; \
  struct { T _at_yzzw[1]; MTL_SWIZZLE(1, 3, 1, 2, 2, 3) yzzw; }; \
  MTL_SWIZZLE(0, 4, 1, 2, 3, 0) yzwx; \
  struct { T _at_yzwy[1]; MTL_SWIZZLE(1, 3, 1, 2, 3, 1) yzwy; }; \
  struct { T _at_yzwz[1]; MTL_SWIZZLE(1, 3, 1, 2, 3, 2) yzwz; }; \
  struct { T _at_yzww[1]; MTL_SWIZZLE(1, 3, 1, 2, 3, 3) yzww; }; \
  MTL_SWIZZLE(0, 4, 1, 3, 0, 2) ywxz; \
  struct { T _at_ywyz[1]; MTL_SWIZZLE(1, 3, 1, 3, 1, 2) ywyz; }; \
  MTL_SWIZZLE(0, 4, 1, 3, 2, 0) ywzx; \
  struct { T _at_ywzy[1]; MTL_SWIZZLE(1, 3, 1, 3, 2, 1) ywzy; }; \
  struct { T _at_ywzz[1]; MTL_SWIZZLE(1, 3, 1, 3, 2, 2) ywzz; }; \
  struct { T _at_ywzw[1]; MTL_SWIZZLE(1, 3, 1, 3, 2, 3) ywzw; }; \
  struct { T _at_ywwz[1]; MTL_SWIZZLE(1, 3, 1, 3, 3, 2) ywwz; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 0, 1) zxxy; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 0) zxyx; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 1) zxyy; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 2) zxyz; \
  MTL_SWIZZLE(0, 4, 2, 0, 1, 3) zxyw; \
  MTL_SWIZZLE(0, 3, 2, 0, 2, 1) zxzy; \
  MTL_SWIZZLE(0, 4, 2, 0, 3, 1) zxwy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 0) zyxx; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 1) zyxy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 2) zyxz; \
  MTL_SWIZZLE(0, 4, 2, 1, 0, 3) zyxw; \
  MTL_SWIZZLE(0, 3, 2, 1, 1, 0) zyyx; \
  struct { T _at_zyyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 1) zyyy; }; \
  struct { T _at_zyyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 2) zyyz; }; \
  struct { T _at_zyyw[1]; MTL_SWIZZLE(1, 3, 2, 1, 1, 3) zyyw; }; \
  MTL_SWIZZLE(0, 3, 2, 1, 2, 0) zyzx; \
  struct { T _at_zyzy[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 1) zyzy; }; \
  struct { T _at_zyzz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 2) zyzz; }; \
  struct { T _at_zyzw[1]; MTL_SWIZZLE(1, 3, 2, 1, 2, 3) zyzw; }; \
  MTL_SWIZZLE(0, 4, 2, 1, 3, 0) zywx; \
  struct { T _at_zywy[1]; MTL_SWIZZLE(1, 3, 2, 1, 3, 1) zywy; }; \
  struct { T _at_zywz[1]; MTL_SWIZZLE(1, 3, 2, 1, 3, 2) zywz; }; \
  struct { T _at_zyww[1]; MTL_SWIZZLE(1, 3, 2, 1, 3, 3) zyww; }; \
  MTL_SWIZZLE(0, 3, 2, 2, 0, 1) zzxy; \
  MTL_SWIZZLE(0, 3, 2, 2, 1, 0) zzyx; \
  struct { T _at_zzyy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 1) zzyy; }; \
  struct { T _at_zzyz[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 2) zzyz; }; \
  struct { T _at_zzyw[1]; MTL_SWIZZLE(1, 3, 2, 2, 1, 3) zzyw; }; \
  struct { T _at_zzzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 2, 1) zzzy; }; \
  struct { T _at_zzzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2, 2) zzzz; }; \
  struct { T _at_zzzw[2]; MTL_SWIZZLE(2, 2, 2, 2, 2, 3) zzzw; }; \
  struct { T _at_zzwy[1]; MTL_SWIZZLE(1, 3, 2, 2, 3, 1) zzwy; }; \
  struct { T _at_zzwz[2]; MTL_SWIZZLE(2, 2, 2, 2, 3, 2) zzwz; }; \
  struct { T _at_zzww[2]; MTL_SWIZZLE(2, 2, 2, 2, 3, 3) zzww; }; \
  MTL_SWIZZLE(0, 4, 2, 3, 0, 1) zwxy; \
  MTL_SWIZZLE(0, 4, 2, 3, 1, 0) zwyx; \
  struct { T _at_zwyy[1]; MTL_SWIZZLE(1, 3, 2, 3, 1, 1) zwyy; }; \
  struct { T _at_zwyz[1]; MTL_SWIZZLE(1, 3, 2, 3, 1, 2) zwyz; }; \
  struct { T _at_zwyw[1]; MTL_SWIZZLE(1, 3, 2, 3, 1, 3) zwyw; }; \
  struct { T _at_zwzy[1]; MTL_SWIZZLE(1, 3, 2, 3, 2, 1) zwzy; }; \
  struct { T _at_zwzz[2]; MTL_SWIZZLE(2, 2, 2, 3, 2, 2) zwzz; }; \
  struct { T _at_zwzw[2]; MTL_SWIZZLE(2, 2, 2, 3, 2, 3) zwzw; }; \
  struct { T _at_zwwy[1]; MTL_SWIZZLE(1, 3, 2, 3, 3, 1) zwwy; }; \
  struct { T _at_zwwz[2]; MTL_SWIZZLE(2, 2, 2, 3, 3, 2) zwwz; }; \
  struct { T _at_zwww[2]; MTL_SWIZZLE(2, 2, 2, 3, 3, 3) zwww; }; \
  MTL_SWIZZLE(0, 4, 3, 0, 1, 2) wxyz; \
  MTL_SWIZZLE(0, 4, 3, 0, 2, 1) wxzy; \
  MTL_SWIZZLE(0, 4, 3, 1, 0, 2) wyxz; \
  struct { T _at_wyyz[1]; MTL_SWIZZLE(1, 3, 3, 1, 1, 2) wyyz; }; \
  MTL_SWIZZLE(0, 4, 3, 1, 2, 0) wyzx; \
  struct { T _at_wyzy[1]; MTL_SWIZZLE(1, 3, 3, 1, 2, 1) wyzy; }; \
  struct { T _at_wyzz[1]; MTL_SWIZZLE(1, 3, 3, 1, 2, 2) wyzz; }; \
  struct { T _at_wyzw[1]; MTL_SWIZZLE(1, 3, 3, 1, 2, 3) wyzw; }; \
  struct { T _at_wywz[1]; MTL_SWIZZLE(1, 3, 3, 1, 3, 2) wywz; }; \
  MTL_SWIZZLE(0, 4, 3, 2, 0, 1) wzxy; \
  MTL_SWIZZLE(0, 4, 3, 2, 1, 0) wzyx; \
  struct { T _at_wzyy[1]; MTL_SWIZZLE(1, 3, 3, 2, 1, 1) wzyy; }; \
  struct { T _at_wzyz[1]; MTL_SWIZZLE(1, 3, 3, 2, 1, 2) wzyz; }; \
  struct { T _at_wzyw[1]; MTL_SWIZZLE(1, 3, 3, 2, 1, 3) wzyw; }; \
  struct { T _at_wzzy[1]; MTL_SWIZZLE(1, 3, 3, 2, 2, 1) wzzy; }; \
  struct { T _at_wzzz[2]; MTL_SWIZZLE(2, 2, 3, 2, 2, 2) wzzz; }; \
  struct { T _at_wzzw[2]; MTL_SWIZZLE(2, 2, 3, 2, 2, 3) wzzw; }; \
  struct { T _at_wzwy[1]; MTL_SWIZZLE(1, 3, 3, 2, 3, 1) wzwy; }; \
  struct { T _at_wzwz[2]; MTL_SWIZZLE(2, 2, 3, 2, 3, 2) wzwz; }; \
  struct { T _at_wzww[2]; MTL_SWIZZLE(2, 2, 3, 2, 3, 3) wzww; }; \
  struct { T _at_wwyz[1]; MTL_SWIZZLE(1, 3, 3, 3, 1, 2) wwyz; }; \
  struct { T _at_wwzy[1]; MTL_SWIZZLE(1, 3, 3, 3, 2, 1) wwzy; }; \
  struct { T _at_wwzz[2]; MTL_SWIZZLE(2, 2, 3, 3, 2, 2) wwzz; }; \
  struct { T _at_wwzw[2]; MTL_SWIZZLE(2, 2, 3, 3, 2, 3) wwzw; }; \
  struct { T _at_wwwz[2]; MTL_SWIZZLE(2, 2, 3, 3, 3, 2) wwwz; }; \
  struct { T _at_wwww[3]; MTL_SWIZZLE(3, 1, 3, 3, 3, 3) wwww; }; \
  MTL_SWIZZLE(0, 1, 0, 0) rr; \
  MTL_SWIZZLE(0, 2, 0, 1) rg; \
  MTL_SWIZZLE(0, 2, 1, 0) gr; \
  struct { T _at_gg[1]; MTL_SWIZZLE(1, 1, 1, 1) gg; }; \
  struct { T _at_gb[1]; MTL_SWIZZLE(1, 2, 1, 2) gb; }; \
  struct { T _at_bg[1]; MTL_SWIZZLE(1, 2, 2, 1) bg; }; \
  struct { T _at_bb[2]; MTL_SWIZZLE(2, 1, 2, 2) bb; }; \
  struct { T _at_ba[2]; MTL_SWIZZLE(2, 2, 2, 3) ba; }; \
  struct { T _at_ab[2]; MTL_SWIZZLE(2, 2, 3, 2) ab; }; \
  struct { T _at_aa[3]; MTL_SWIZZLE(3, 1, 3, 3) aa; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) rrr; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) rrg; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) rgr; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) rgg; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) rgb; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) rbg; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) grr; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) grg; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) grb; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) ggr; \
  struct { T _at_ggg[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) ggg; }; \
  struct { T _at_ggb[1]; MTL_SWIZZLE(1, 2, 1, 1, 2) ggb; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) gbr; \
  struct { T _at_gbg[1]; MTL_SWIZZLE(1, 2, 1, 2, 1) gbg; }; \
  struct { T _at_gbb[1]; MTL_SWIZZLE(1, 2, 1, 2, 2) gbb; }; \
  struct { T _at_gba[1]; MTL_SWIZZLE(1, 3, 1, 2, 3) gba; }; \
  struct { T _at_gab[1]; MTL_SWIZZLE(1, 3, 1, 3, 2) gab; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) brg; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) bgr; \
  struct { T _at_bgg[1]; MTL_SWIZZLE(1, 2, 2, 1, 1) bgg; }; \
  struct { T _at_bgb[1]; MTL_SWIZZLE(1, 2, 2, 1, 2) bgb; }; \
  struct { T _at_bga[1]; MTL_SWIZZLE(1, 3, 2, 1, 3) bga; }; \
  struct { T _at_bbg[1]; MTL_SWIZZLE(1, 2, 2, 2, 1) bbg; }; \
  struct { T _at_bbb[2]; MTL_SWIZZLE(2, 1, 2, 2, 2) bbb; }; \
  struct { T _at_bba[2]; MTL_SWIZZLE(2, 2, 2, 2, 3) bba; }; \
  struct { T _at_bag[1]; MTL_SWIZZLE(1, 3, 2, 3, 1) bag; }; \
  struct { T _at_bab[2]; MTL_SWIZZLE(2, 2, 2, 3, 2) bab; }; \
  struct { T _at_baa[2]; MTL_SWIZZLE(2, 2, 2, 3, 3) baa; }; \
  struct { T _at_agb[1]; MTL_SWIZZLE(1, 3, 3, 1, 2) agb; }; \
  struct { T _at_abg[1]; MTL_SWIZZLE(1, 3, 3, 2, 1) abg; }; \
  struct { T _at_abb[2]; MTL_SWIZZLE(2, 2, 3, 2, 2) abb; }; \
  struct { T _at_aba[2]; MTL_SWIZZLE(2, 2, 3, 2, 3) aba; }; \
  struct { T _at_aab[2]; MTL_SWIZZLE(2, 2, 3, 3, 2) aab; }; \
  struct { T _at_aaa[3]; MTL_SWIZZLE(3, 1, 3, 3, 3) aaa; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) rrrr; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) rrrg; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) rrgr; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) rrgg; \
  MTL_SWIZZLE(0, 3, 0, 0, 1, 2) rrgb; \
  MTL_SWIZZLE(0, 3, 0, 0, 2, 1) rrbg; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) rgrr; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) rgrg; \
  MTL_SWIZZLE(0, 3, 0, 1, 0, 2) rgrb; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) rggr; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) rggg; \
  MTL_SWIZZLE(0, 3, 0, 1, 1, 2) rggb; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 0) rgbr; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 1) rgbg; \
  MTL_SWIZZLE(0, 3, 0, 1, 2, 2) rgbb; \
  MTL_SWIZZLE(0, 4, 0, 1, 2, 3) rgba; \
  MTL_SWIZZLE(0, 4, 0, 1, 3, 2) rgab; \
  MTL_SWIZZLE(0, 3, 0, 2, 0, 1) rbrg; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 0) rbgr; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 1) rbgg; \
  MTL_SWIZZLE(0, 3, 0, 2, 1, 2) rbgb; \
  MTL_SWIZZLE(0, 4, 0, 2, 1, 3) rbga; \
  MTL_SWIZZLE(0, 3, 0, 2, 2, 1) rbbg; \
  MTL_SWIZZLE(0, 4, 0, 2, 3, 1) rbag; \
  MTL_SWIZZLE(0, 4, 0, 3, 1, 2) ragb; \
  MTL_SWIZZLE(0, 4, 0, 3, 2, 1) rabg; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) grrr; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) grrg; \
  MTL_SWIZZLE(0, 3, 1, 0, 0, 2) grrb; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) grgr; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) grgg; \
  MTL_SWIZZLE(0, 3, 1, 0, 1, 2) grgb; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 0) grbr; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 1) grbg; \
  MTL_SWIZZLE(0, 3, 1, 0, 2, 2) grbb; \
  MTL_SWIZZLE(0, 4, 1, 0, 2, 3) grba; \
  MTL_SWIZZLE(0, 4, 1, 0, 3, 2) grab; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) ggrr; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) ggrg; \
  MTL_SWIZZLE(0, 3, 1, 1, 0, 2) ggrb; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) gggr; \
  struct { T _at_gggg[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) gggg; }; \
  struct { T _at_gggb[1]; MTL_SWIZZLE(1, 2, 1, 1, 1, 2) gggb; }; \
  MTL_SWIZZLE(0, 3, 1, 1, 2, 0) ggbr; \
  struct { T _at_ggbg[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 1) ggbg; }; \
  struct { T _at_ggbb[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 2) ggbb; }; \
  struct { T _at_ggba[1]; MTL_SWIZZLE(1, 3, 1, 1, 2, 3) ggba; }; \
  struct { T _at_ggab[1]; MTL_SWIZZLE(1, 3, 1, 1, 3, 2) ggab; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 0) gbrr; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 1) gbrg; \
  MTL_SWIZZLE(0, 3, 1, 2, 0, 2) gbrb; \
  MTL_SWIZZLE(0, 4, 1, 2, 0, 3) gbra; \
  MTL_SWIZZLE(0, 3, 1, 2, 1, 0) gbgr; \
  struct { T _at_gbgg[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 1) gbgg; }; \
  struct { T _at_gbgb[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 2) gbgb; }; \
  struct { T _at_gbga[1]; MTL_SWIZZLE(1, 3, 1, 2, 1, 3) gbga; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 2, 0) gbbr; \
  struct { T _at_gbbg[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 1) gbbg; }; \
  struct { T _at_gbbb[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 2) gbbb; }; \
  struct { T _at_gbba[1]; MTL_SWIZZLE(1, 3, 1, 2, 2, 3) gbba; }; \
  MTL_SWIZZLE(0, 4, 1, 2, 3, 0) gbar; \
  struct { T _at_gbag[1]; MTL_SWIZZLE(1, 3, 1, 2, 3, 1) gbag; }; \
  struct { T _at_gbab[1]; MTL_SWIZZLE(1, 3, 1, 2, 3, 2) gbab; }; \
  struct { T _at_gbaa[1]; MTL_SWIZZLE(1, 3, 1, 2, 3, 3) gbaa; }; \
  MTL_SWIZZLE(0, 4, 1, 3, 0, 2) garb; \
  struct { T _at_gagb[1]; MTL_SWIZZLE(1, 3, 1, 3, 1, 2) gagb; }; \
  MTL_SWIZZLE(0, 4, 1, 3, 2, 0) gabr; \
  struct { T _at_gabg[1]; MTL_SWIZZLE(1, 3, 1, 3, 2, 1) gabg; }; \
  struct { T _at_gabb[1]; MTL_SWIZZLE(1, 3, 1, 3, 2, 2) gabb; }; \
  struct { T _at_gaba[1]; MTL_SWIZZLE(1, 3, 1, 3, 2, 3) gaba; }; \
  struct { T _at_gaab[1]; MTL_SWIZZLE(1, 3, 1, 3, 3, 2) gaab; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 0, 1) brrg; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 0) brgr; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 1) brgg; \
  MTL_SWIZZLE(0, 3, 2, 0, 1, 2) brgb; \
  MTL_SWIZZLE(0, 4, 2, 0, 1, 3) brga; \
  MTL_SWIZZLE(0, 3, 2, 0, 2, 1) brbg; \
  MTL_SWIZZLE(0, 4, 2, 0, 3, 1) brag; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 0) bgrr; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 1) bgrg; \
  MTL_SWIZZLE(0, 3, 2, 1, 0, 2) bgrb; \
  MTL_SWIZZLE(0, 4, 2, 1, 0, 3) bgra; \
  MTL_SWIZZLE(0, 3, 2, 1, 1, 0) bggr; \
  struct { T _at_bggg[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 1) bggg; }; \
  struct { T _at_bggb[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 2) bggb; }; \
  struct { T _at_bgga[1]; MTL_SWIZZLE(1, 3, 2, 1, 1, 3) bgga; }; \
  MTL_SWIZZLE(0, 3, 2, 1, 2, 0) bgbr; \
  struct { T _at_bgbg[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 1) bgbg; }; \
  struct { T _at_bgbb[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 2) bgbb; }; \
  struct { T _at_bgba[1]; MTL_SWIZZLE(1, 3, 2, 1, 2, 3) bgba; }; \
  MTL_SWIZZLE(0, 4, 2, 1, 3, 0) bgar; \
  struct { T _at_bgag[1]; MTL_SWIZZLE(1, 3, 2, 1, 3, 1) bgag; }; \
  struct { T _at_bgab[1]; MTL_SWIZZLE(1, 3, 2, 1, 3, 2) bgab; }; \
  struct { T _at_bgaa[1]; MTL_SWIZZLE(1, 3, 2, 1, 3, 3) bgaa; }; \
  MTL_SWIZZLE(0, 3, 2, 2, 0, 1) bbrg; \
  MTL_SWIZZLE(0, 3, 2, 2, 1, 0) bbgr; \
  struct { T _at_bbgg[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 1) bbgg; }; \
  struct { T _at_bbgb[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 2) bbgb; }; \
  struct { T _at_bbga[1]; MTL_SWIZZLE(1, 3, 2, 2, 1, 3) bbga; }; \
  struct { T _at_bbbg[1]; MTL_SWIZZLE(1, 2, 2, 2, 2, 1) bbbg; }; \
  struct { T _at_bbbb[2]; MTL_SWIZZLE(2, 1, 2, 2, 2, 2) bbbb; }; \
  struct { T _at_bbba[2]; MTL_SWIZZLE(2, 2, 2, 2, 2, 3) bbba; }; \
  struct { T _at_bbag[1]; MTL_SWIZZLE(1, 3, 2, 2, 3, 1) bbag; }; \
  struct { T _at_bbab[2]; MTL_SWIZZLE(2, 2, 2, 2, 3, 2) bbab; }; \
  struct { T _at_bbaa[2]; MTL_SWIZZLE(2, 2, 2, 2, 3, 3) bbaa; }; \
  MTL_SWIZZLE(0, 4, 2, 3, 0, 1) barg; \
  MTL_SWIZZLE(0, 4, 2, 3, 1, 0) bagr; \
  struct { T _at_bagg[1]; MTL_SWIZZLE(1, 3, 2, 3, 1, 1) bagg; }; \
  struct { T _at_bagb[1]; MTL_SWIZZLE(1, 3, 2, 3, 1, 2) bagb; }; \
  struct { T _at_baga[1]; MTL_SWIZZLE(1, 3, 2, 3, 1, 3) baga; }; \
  struct { T _at_babg[1]; MTL_SWIZZLE(1, 3, 2, 3, 2, 1) babg; }; \
  struct { T _at_babb[2]; MTL_SWIZZLE(2, 2, 2, 3, 2, 2) babb; }; \
  struct { T _at_baba[2]; MTL_SWIZZLE(2, 2, 2, 3, 2, 3) baba; }; \
  struct { T _at_baag[1]; MTL_SWIZZLE(1, 3, 2, 3, 3, 1) baag; }; \
  struct { T _at_baab[2]; MTL_SWIZZLE(2, 2, 2, 3, 3, 2) baab; }; \
  struct { T _at_baaa[2]; MTL_SWIZZLE(2, 2, 2, 3, 3, 3) baaa; }; \
  MTL_SWIZZLE(0, 4, 3, 0, 1, 2) argb; \
  MTL_SWIZZLE(0, 4, 3, 0, 2, 1) arbg; \
  MTL_SWIZZLE(0, 4, 3, 1, 0, 2) agrb; \
  struct { T _at_aggb[1]; MTL_SWIZZLE(1, 3, 3, 1, 1, 2) aggb; }; \
  MTL_SWIZZLE(0, 4, 3, 1, 2, 0) agbr; \
  struct { T _at_agbg[1]; MTL_SWIZZLE(1, 3, 3, 1, 2, 1) agbg; }; \
  struct { T _at_agbb[1]; MTL_SWIZZLE(1, 3, 3, 1, 2, 2) agbb; }; \
  struct { T _at_agba[1]; MTL_SWIZZLE(1, 3, 3, 1, 2, 3) agba; }; \
  struct { T _at_agab[1]; MTL_SWIZZLE(1, 3, 3, 1, 3, 2) agab; }; \
  MTL_SWIZZLE(0, 4, 3, 2, 0, 1) abrg; \
  MTL_SWIZZLE(0, 4, 3, 2, 1, 0) abgr; \
  struct { T _at_abgg[1]; MTL_SWIZZLE(1, 3, 3, 2, 1, 1) abgg; }; \
  struct { T _at_abgb[1]; MTL_SWIZZLE(1, 3, 3, 2, 1, 2) abgb; }; \
  struct { T _at_abga[1]; MTL_SWIZZLE(1, 3, 3, 2, 1, 3) abga; }; \
  struct { T _at_abbg[1]; MTL_SWIZZLE(1, 3, 3, 2, 2, 1) abbg; }; \
  struct { T _at_abbb[2]; MTL_SWIZZLE(2, 2, 3, 2, 2, 2) abbb; }; \
  struct { T _at_abba[2]; MTL_SWIZZLE(2, 2, 3, 2, 2, 3) abba; }; \
  struct { T _at_abag[1]; MTL_SWIZZLE(1, 3, 3, 2, 3, 1) abag; }; \
  struct { T _at_abab[2]; MTL_SWIZZLE(2, 2, 3, 2, 3, 2) abab; }; \
  struct { T _at_abaa[2]; MTL_SWIZZLE(2, 2, 3, 2, 3, 3) abaa; }; \
  struct { T _at_aagb[1]; MTL_SWIZZLE(1, 3, 3, 3, 1, 2) aagb; }; \
  struct { T _at_aabg[1]; MTL_SWIZZLE(1, 3, 3, 3, 2, 1) aabg; }; \
  struct { T _at_aabb[2]; MTL_SWIZZLE(2, 2, 3, 3, 2, 2) aabb; }; \
  struct { T _at_aaba[2]; MTL_SWIZZLE(2, 2, 3, 3, 2, 3) aaba; }; \
  struct { T _at_aaab[2]; MTL_SWIZZLE(2, 2, 3, 3, 3, 2) aaab; }; \
  struct { T _at_aaaa[3]; MTL_SWIZZLE(3, 1, 3, 3, 3, 3) aaaa; }; \

