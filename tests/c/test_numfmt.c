/* test_numfmt.c: unit tests of fmt_double (src/numfmt.c): Python's repr for a table of doubles
 * (the texts were made by python3), and for many random doubles the text reads back to the same
 * bits with no shorter text that would. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "numfmt.h"

static double from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static void python_table(void) {
  static const struct {
    uint64_t bits;
    const char *repr;
  } table[] = {
      {0x3fb999999999999aULL, "0.1"},
      {0x4000000000000000ULL, "2.0"},
      {0x4341c37937e08000ULL, "1e+16"},
      {0x0000000000000001ULL, "5e-324"},
      {0x8000000000000000ULL, "-0.0"},
      {0x0000000000000000ULL, "0.0"},
      {0x3fd5555555555555ULL, "0.3333333333333333"},
      {0x43e0000000000000ULL, "9.223372036854776e+18"},
      {0x7fefffffffffffffULL, "1.7976931348623157e+308"},
      {0x000012688b70e62bULL, "1e-310"},
      {0x437b69b4ba630f35ULL, "1.2345678901234568e+17"},
      {0x3fd3333333333333ULL, "0.3"},
      {0x4480f0cf064dd592ULL, "1e+22"},
      {0x44b52d02c7e14af6ULL, "1e+23"},
      {0x4340000000000000ULL, "9007199254740992.0"},
      {0xbff8000000000000ULL, "-1.5"},
      {0x3ee4f8b588e368f1ULL, "1e-05"},
      {0x3f1a36e2eb1c432dULL, "0.0001"},
      {0x430c6bf526340000ULL, "1000000000000000.0"},
      {0x40934a456d5cfaadULL, "1234.5678"},
      {0x0010000000000000ULL, "2.2250738585072014e-308"},
      {0x0000000000000001ULL, "5e-324"},
      {0x4059000000000000ULL, "100.0"},
      {0x54b249ad2594c37dULL, "1e+100"},
      {0x400921f9f01b866eULL, "3.14159"},
      {0x7953a6f252e6b438ULL, "2.7216092808335446e+276"},
      {0x32899387269e0d37ULL, "3.035766360112293e-65"},
      {0x062e3fe8a6a3a450ULL, "6.665830898196862e-279"},
      {0x691f8412128b2f33ULL, "2.3558459513947972e+198"},
      {0x0c0c7408892f902bULL, "1.2418970069620836e-250"},
      {0x4a98cc2e5d9dc9f8ULL, "2.319469273766672e+51"},
      {0x74712eca0ed90475ULL, "7.873531487934826e+252"},
      {0x1b7b3ae681e74ef5ULL, "2.6878898238430084e-176"},
      {0x0b0051ad099950d8ULL, "1.086847153644306e-255"},
      {0x3586aa4d6f03675aULL, "7.572358053192185e-51"},
      {0x1ece0b9211e20b8fULL, "2.6713290337373985e-160"},
      {0x4688b7671738f7d9ULL, "6.266356115726005e+31"},
      {0x0790eedb6cad4a26ULL, "3.13010388235547e-272"},
      {0x4860c967d3ac94afULL, "4.569785438180719e+40"},
      {0x7946082e1fb17c23ULL, "1.5255942855744936e+276"},
  };
  for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
    char out[32];
    fmt_double(from_bits(table[i].bits), out);
    CHECK(strcmp(out, table[i].repr) == 0, "%.17g gave %s, Python writes %s", from_bits(table[i].bits), out,
          table[i].repr);
  }
  char out[32];
  fmt_double(NAN, out);
  CHECK(strcmp(out, "nan") == 0, "%s", out);
  fmt_double(-INFINITY, out);
  CHECK(strcmp(out, "-inf") == 0, "%s", out);
}

/* Significant digits of a text like "-1.25e-07" or "0.001". */
static int digits_of(const char *s) {
  int n = 0, started = 0, trailing = 0;
  for (; *s && *s != 'e'; s++) {
    if (*s < '0' || *s > '9') continue;
    if (*s != '0') started = 1;
    if (!started) continue;
    n++;
    trailing = *s == '0' ? trailing + 1 : 0;
  }
  return n - trailing > 0 ? n - trailing : 1;
}

static void random_doubles(void) {
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  int bad_back = 0, bad_short = 0;
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d = from_bits(x);
    if (!isfinite(d)) continue;
    char out[32], shorter[40];
    fmt_double(d, out);
    double back = strtod(out, NULL);
    if (memcmp(&back, &d, sizeof d) != 0) bad_back++;
    int p = digits_of(out);
    if (p > 1) {
      snprintf(shorter, sizeof shorter, "%.*e", p - 2, d);
      back = strtod(shorter, NULL);
      if (memcmp(&back, &d, sizeof d) == 0) bad_short++;
    }
  }
  CHECK(bad_back == 0, "%d of 200000 texts read back to other bits", bad_back);
  CHECK(bad_short == 0, "%d of 200000 texts were longer than needed", bad_short);
}

/* Everyday doubles (uniform in [0, 1) scaled by 10^-30..10^29, and powers of two), where fmt_double
 * takes its fast path: the text reads back, is the shortest, and has the digits printf rounds to
 * at that length (of two texts of one length that read back, Python writes the nearer). */
/* The significant digits of a text, without leading or trailing zeros, into out. */
static void sig_digits(const char *s, char out[40]) {
  int n = 0;
  for (; *s && *s != 'e'; s++)
    if (*s >= '0' && *s <= '9' && (n || *s != '0')) out[n++] = *s;
  while (n > 1 && out[n - 1] == '0') n--;
  out[n] = '\0';
}

static void everyday_doubles(void) {
  uint64_t x = 0x2545F4914F6CDD1DULL;
  int bad = 0;
  for (int i = 0; i < 400000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d = i % 4 == 3 ? ldexp(1.0, (int)(x % 200) - 100) : (double)(x >> 11) * 0x1p-53 * pow(10, (int)(x % 60) - 30);
    char out[32], e[48];
    fmt_double(d, out);
    int p = digits_of(out);
    double back = strtod(out, NULL);
    snprintf(e, sizeof e, "%.*e", p - 1, d);
    char ours[40], printfs[40];
    sig_digits(out, ours), sig_digits(e, printfs);
    if (memcmp(&back, &d, sizeof d) != 0 || strcmp(ours, printfs) != 0) bad++;
    if (p > 1) {
      snprintf(e, sizeof e, "%.*e", p - 2, d);
      back = strtod(e, NULL);
      if (memcmp(&back, &d, sizeof d) == 0) bad++;
    }
  }
  CHECK(bad == 0, "%d of 400000 everyday doubles were written wrong", bad);
}

int main(void) {
  python_table();
  random_doubles();
  everyday_doubles();
  return check_summary("numfmt");
}
