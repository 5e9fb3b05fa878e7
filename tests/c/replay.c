/* replay.c: runs a fuzz target (fuzz/fuzz_*.c) on every file of the directories given: its seed
 * corpus and every input that ever failed (fuzz/regressions/). A failing property aborts (and a
 * sanitizer report ends the run); each input that returns counts as one check passed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz.h"

static void replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return; /* a target without regressions yet */
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t n;
    char *data = check_read_file(path, &n);
    CHECK(data != NULL, "cannot read %s", path);
    if (!data) continue;
    fprintf(stderr, "replay %s\n", path);
    CHECK(LLVMFuzzerTestOneInput((const uint8_t *)data, n) == 0, "%s", path);
    free(data);
  }
  closedir(d);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) replay_dir(argv[i]);
  const char *name = strrchr(argv[0], '/');
  return check_summary(name ? name + 1 : argv[0]);
}
