/* fuzz.h: what the fuzz targets (fuzz/fuzz_*.c) share: libFuzzer's entry point, and a check that
 * aborts with a message (libFuzzer keeps the input; the replay in `make unit` fails on it). */
#ifndef EVL_FUZZ_H
#define EVL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The entry point libFuzzer calls with each input; tests/c/replay.c calls it for each file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, msg)                                                                     \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: fuzz property failed: %s (%s)\n", __FILE__, __LINE__, #cond, msg); \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#endif
