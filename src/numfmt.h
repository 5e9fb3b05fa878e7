/* numfmt.h: the text of a double, shortest form that round-trips, as Python's repr writes it:
 * used for every float the runtime writes as text (CSV cells, JSON). */
#ifndef EVL_NUMFMT_H
#define EVL_NUMFMT_H

#include <stddef.h>

/* 0.1 -> "0.1", 2.0 -> "2.0", 1e16 -> "1e+16", 5e-324 -> "5e-324", NaN -> "nan", inf -> "inf",
 * -0.0 -> "-0.0". Ties round to even as Python does, so the text is Python's repr(d).
 * Returns the text's length (out is NUL-terminated). */
size_t fmt_double(double d, char out[32]);

/* The decimal text of v, "-12", NUL-terminated: returns its length. */
size_t fmt_integer(long long v, char out[24]);

#endif
