/* numfmt.c: the text of a double: the shortest that reads back to the same bits, in Python's repr
 * style (what pandas writes). One snprintf of 25 digits, rounded by hand, then strtod to check. */
#include "numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Round the digits of a "%.24e" text to `keep` significant digits, into out as "%.{keep-1}e"
 * would print them (one snprintf instead of one per precision). */
static void round_digits(const char *e25, int keep, char out[48]) {
  const char *p = e25;
  char sign = 0, digits[32];
  if (*p == '-') sign = *p++;
  int nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  int exp = atoi(p + 1);
  int up = digits[keep] > '5';
  if (digits[keep] == '5') { /* a tie rounds to even, as Python's repr does */
    int rest = 0;
    for (int i = keep + 1; i < nd; i++) rest |= digits[i] != '0';
    up = rest || (digits[keep - 1] - '0') % 2 == 1;
  }
  digits[keep] = '\0';
  for (int i = keep - 1; up && i >= 0; i--) {
    if (digits[i] == '9') digits[i] = '0';
    else digits[i]++, up = 0;
  }
  if (up) { /* 9.99..9 rounded up to 10.0..0 */
    memmove(digits + 1, digits, (size_t)keep);
    digits[0] = '1';
    digits[keep] = '\0';
    exp++;
  }
  char *o = out;
  if (sign) *o++ = sign;
  *o++ = digits[0];
  if (keep > 1) {
    *o++ = '.';
    memcpy(o, digits + 1, (size_t)keep - 1);
    o += keep - 1;
  }
  sprintf(o, "e%d", exp);
}

/* A "%.Ne" text in the style of "%g": plain notation for exponents -5..16, trailing zeros dropped. */
static void to_g_style(const char *e, char out[32]) {
  const char *x = strchr(e, 'e');
  int exp = atoi(x + 1), neg = e[0] == '-';
  char digits[32];
  int nd = 0;
  for (const char *p = e; p < x; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  char *o = out;
  if (neg) *o++ = '-';
  if (exp < -4 || exp >= 16) {
    *o++ = digits[0];
    if (nd > 1) {
      *o++ = '.';
      memcpy(o, digits + 1, (size_t)nd - 1);
      o += nd - 1;
    }
    sprintf(o, "e%s%02d", exp < 0 ? "-" : "+", exp < 0 ? -exp : exp);
    return;
  }
  if (exp < 0) {
    *o++ = '0', *o++ = '.';
    for (int i = -1; i > exp; i--) *o++ = '0';
    memcpy(o, digits, (size_t)nd);
    o += nd;
  } else {
    for (int i = 0; i <= exp || i < nd; i++) {
      if (i == exp + 1) *o++ = '.';
      *o++ = i < nd ? digits[i] : '0';
    }
  }
  *o = '\0';
}

void fmt_double(double d, char out[32]) {
  if (!isfinite(d)) {
    strcpy(out, isnan(d) ? "nan" : d < 0 ? "-inf" : "inf");
    return;
  }
  if (d == 0) {
    strcpy(out, signbit(d) ? "-0.0" : "0.0");
    return;
  }
  /* The shortest of 1..17 significant digits that reads back to the same double. A normal double
   * that round-trips at 15 digits has no shorter text (a decimal of 15 digits or fewer maps to one
   * double, which prints back as that decimal), so normal ones start at 15 and subnormals at 1.
   * Texts come from one "%.24e" rounded by hand: one snprintf per value, not one per try. */
  char e25[48], cand[48];
  snprintf(e25, sizeof e25, "%.24e", d); /* 25 digits: rounding them again is rounding the value */
  int first = fpclassify(d) == FP_SUBNORMAL ? 1 : 15;
  for (int keep = first; keep <= 17; keep++) {
    round_digits(e25, keep, cand);
    double back = strtod(cand, NULL);
    if (memcmp(&back, &d, sizeof d) == 0) break;
  }
  to_g_style(cand, out);
  /* Python writes floats with a '.' or an exponent so that they read back as floats, not ints. */
  if (!strpbrk(out, ".e")) strcat(out, ".0");
}

