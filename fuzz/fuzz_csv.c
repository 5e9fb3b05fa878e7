/* fuzz_csv.c: libFuzzer target for the CSV reader and appender (src/csv.c). The input is an existing
 * file (after one flag byte); two rows are appended, with the file's first column (the append
 * path) or with a new column too (the rewrite path). Properties: no crash; on success the two rows
 * are the file's last two records, read back by an independent RFC 4180 reader, under the column
 * names given; on failure the file is left byte for byte as it was. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "csv.h"
#include "fuzz.h"

/* Records as lists of fields, read as csv.c documents: a quote opens a field only at its start, ""
 * inside is a quote, text after a closing quote is kept, an open quote runs to the end, lines end
 * with \n, \r or \r\n, a line holding one empty unquoted field is skipped, a UTF-8 BOM is dropped. */
typedef struct rec {
  buf_t *f;
  size_t n;
} rec;

static size_t read_records(const char *s, size_t len, rec *out, size_t max) {
  size_t i = len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0, nrec = 0;
  while (i < len && nrec < max) {
    rec r = {NULL, 0};
    int quoted_any = 0;
    for (;;) {
      r.f = realloc(r.f, (r.n + 1) * sizeof *r.f);
      buf_t *f = &r.f[r.n++];
      buf_init(f);
      if (i < len && s[i] == '"') {
        quoted_any = 1;
        for (i++; i < len; i++) {
          if (s[i] != '"') buf_addc(f, s[i]);
          else if (i + 1 < len && s[i + 1] == '"') buf_addc(f, '"'), i++;
          else break;
        }
        if (i < len) i++;
      }
      while (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r') buf_addc(f, s[i++]);
      if (i < len && s[i] == ',') {
        i++;
        continue;
      }
      break;
    }
    if (i < len) i += s[i] == '\r' && i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
    if (r.n == 1 && !quoted_any && r.f[0].len == 0) {
      buf_free(&r.f[0]);
      free(r.f);
      continue;
    }
    out[nrec++] = r;
  }
  return nrec;
}

static void free_records(rec *r, size_t n) {
  for (size_t k = 0; k < n; k++) {
    for (size_t j = 0; j < r[k].n; j++) buf_free(&r[k].f[j]);
    free(r[k].f);
  }
}

static int field_is(const buf_t *f, const char *s) {
  return f->len == strlen(s) && (f->len == 0 || memcmp(f->data, s, f->len) == 0);
}

static char dir[64], path[80];

static void remove_dir(void) {
  unlink(path);
  rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  if (!dir[0]) {
    /* tmpfs when there is one: on a journaled disk, the unlink per input dominates the run. */
    snprintf(dir, sizeof dir, "%s/evl-fuzz-csv.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    FUZZ_ASSERT(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/f.csv", dir);
    FUZZ_ASSERT(atexit(remove_dir) == 0, "atexit");
  }
  int widen = data[0] & 1;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  FUZZ_ASSERT(fd >= 0 && write(fd, text, len) == (ssize_t)len && close(fd) == 0, "write the input");

  /* The append path: the header's first column, when it can be a C string and is there once. */
  static rec recs[4200];
  size_t n = read_records(text, len, recs, 4200);
  char first[64] = "p:x";
  if (n > 0 && recs[0].f[0].len > 0 && recs[0].f[0].len < sizeof first && !memchr(recs[0].f[0].data, 0, recs[0].f[0].len)) {
    memcpy(first, recs[0].f[0].data, recs[0].f[0].len);
    first[recs[0].f[0].len] = '\0';
  }
  free_records(recs, n);
  const char *cols[] = {first, "p:fuzz_new"};
  const char *cells[] = {"a,\"b\"", "1", "\n", ""};
  csv_table t = {cols, widen ? 2 : 1, widen ? cells : (const char *[]){cells[0], cells[2]}, 2, NULL, NULL};
  char err[512];
  int rc = csv_append(path, &t, 0, err, sizeof err);

  size_t outlen = 0;
  char *out = NULL;
  fd = open(path, O_RDONLY);
  if (fd >= 0) {
    buf_t b;
    buf_init(&b);
    for (ssize_t r; (r = read(fd, buf_reserve(&b, 65536), 65536)) > 0;) b.len += (size_t)r;
    close(fd);
    out = b.data, outlen = b.len;
  }
  if (rc) {
    FUZZ_ASSERT(outlen == len && (len == 0 || memcmp(out, text, len) == 0), "a failed append leaves the file as it was");
  } else {
    n = read_records(out ? out : "", outlen, recs, 4200);
    FUZZ_ASSERT(n >= 3, "a header and the two new rows");
    size_t c0 = (size_t)-1, c1 = (size_t)-1;
    for (size_t j = 0; j < recs[0].n; j++) {
      if (field_is(&recs[0].f[j], first) && c0 == (size_t)-1) c0 = j;
      if (field_is(&recs[0].f[j], "p:fuzz_new") && c1 == (size_t)-1) c1 = j;
    }
    FUZZ_ASSERT(c0 != (size_t)-1 && (!widen || c1 != (size_t)-1), "the header names the columns");
    const rec *r1 = &recs[n - 2], *r2 = &recs[n - 1];
    FUZZ_ASSERT(c0 < r1->n && field_is(&r1->f[c0], cells[0]), "row 1 is the last but one record");
    FUZZ_ASSERT(c0 < r2->n && field_is(&r2->f[c0], widen ? cells[2] : "\n"), "row 2 is the last record");
    if (widen) FUZZ_ASSERT(c1 < r1->n && field_is(&r1->f[c1], "1"), "row 1's new column");
    free_records(recs, n);
  }
  free(out);
  return 0;
}
