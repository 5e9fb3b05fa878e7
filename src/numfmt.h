/* numfmt.h: the text of a double, shortest form that round-trips, as Python's repr writes it:
 * used for every float the runtime writes as text (CSV cells, JSON). */
#ifndef EVL_NUMFMT_H
#define EVL_NUMFMT_H

/* 0.1 -> "0.1", 2.0 -> "2.0", 1e16 -> "1e+16", 5e-324 -> "5e-324", NaN -> "nan", inf -> "inf",
 * -0.0 -> "-0.0". Ties round to even as Python does, so the text is Python's repr(d). */
void fmt_double(double d, char out[32]);

#endif
