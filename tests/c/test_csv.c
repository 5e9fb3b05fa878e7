/* test_csv.c: unit tests of the CSV writer (src/csv.c): column order, exact bytes of new, appended
 * and widened files, quotes left open, a header that grows under the rewrite (built with
 * -Wl,--wrap=pread so the test can play a careless concurrent writer), links, modes, threads
 * appending at once, and refusals. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"
#include "csv.h"

/* ---- the careless writer: after the next read that finds the end of the file, append grow_text */
static const char *grow_path, *grow_text;
ssize_t __real_pread(int fd, void *p, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *p, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *p, size_t n, off_t off) {
  ssize_t r = __real_pread(fd, p, n, off);
  if (r == 0 && grow_text) {
    int w = open(grow_path, O_WRONLY | O_APPEND);
    if (w >= 0) {
      if (write(w, grow_text, strlen(grow_text)) < 0) perror("grow");
      close(w);
    }
    grow_text = NULL;
  }
  return r;
}

static char *path_in(const char *dir, const char *name) {
  char *p = malloc(strlen(dir) + strlen(name) + 2);
  sprintf(p, "%s/%s", dir, name);
  return p;
}

static int append(const char *path, const char *const *cols, size_t ncols, const char *const *cells, size_t nrows,
                  char *err) {
  csv_table t = {cols, ncols, cells, nrows, NULL, NULL};
  return csv_append(path, &t, 0, err, 512);
}

static void expect_file(const char *path, const char *want, const char *what) {
  char *got = check_read_file(path, NULL);
  CHECK(got && strcmp(got, want) == 0, "%s: file holds\n%s\nexpected\n%s", what, got ? got : "(nothing)", want);
  free(got);
}

static void column_order(void) {
  static const char *const sorted[] = {"p:a", "p:b", "objective", "objective_2", "objective_10", "job_id", "m:x", "zz"};
  size_t n = sizeof sorted / sizeof *sorted;
  int bad = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      int c = csv_column_cmp(sorted[i], sorted[j]);
      if ((i < j && c >= 0) || (i == j && c != 0) || (i > j && c <= 0)) bad++;
    }
  CHECK(bad == 0, "%d pairs out of order", bad);
}

static void new_append_widen(const char *dir) {
  char err[512] = "", *path = path_in(dir, "r.csv");
  const char *cols1[] = {"objective", "p:x", "job_id"};
  const char *rows1[] = {"1", "a,b", "0", "2", " sp", "1"};
  CHECK(append(path, cols1, 3, rows1, 2, err) == 0, "%s", err);
  expect_file(path, "p:x,objective,job_id\n\"a,b\",1,0\n\" sp\",2,1\n", "new file");
  const char *rows2[] = {"3", "q\"q", "2"};
  CHECK(append(path, cols1, 3, rows2, 1, err) == 0, "%s", err);
  expect_file(path, "p:x,objective,job_id\n\"a,b\",1,0\n\" sp\",2,1\n\"q\"\"q\",3,2\n", "appended");
  const char *cols3[] = {"m:new", "job_id", "p:a"};
  const char *rows3[] = {"n", "3", NULL};
  CHECK(append(path, cols3, 3, rows3, 1, err) == 0, "%s", err);
  expect_file(path, "p:a,p:x,objective,job_id,m:new\n,\"a,b\",1,0,\n,\" sp\",2,1,\n,\"q\"\"q\",3,2,\n,,,3,n\n",
              "widened");
  free(path);
}

/* The quoting rule byte by byte, as a reference for csv.c's word-at-a-time one. */
static void ref_cell(buf_t *b, const char *s, size_t n) {
  int q = n && (s[0] == ' ' || s[n - 1] == ' ');
  for (size_t i = 0; i < n; i++) q |= s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
  if (q) buf_addc(b, '"');
  for (size_t i = 0; i < n; i++) {
    buf_addc(b, s[i]);
    if (s[i] == '"') buf_addc(b, '"');
  }
  if (q) buf_addc(b, '"');
}

/* Cells of every length from 0 to 40 with a byte that needs quotes at every place (and none), given
 * with lens (one holds a NUL byte), number cells flagged plain: the bytes the reference writes. */
static void lengths_and_plain(const char *dir) {
  enum { MAXLEN = 40, NROWS = (MAXLEN + 1) * (MAXLEN + 2) };
  static const char specials[] = ",\"\r\n ";
  char *path = path_in(dir, "len.csv"), err[512] = "";
  const char *cols[] = {"p:s", "objective"};
  const char **cells = calloc(2 * NROWS, sizeof *cells);
  size_t *lens = calloc(2 * NROWS, sizeof *lens);
  unsigned char *plain = calloc(2 * NROWS, 1);
  char *text = calloc(NROWS, MAXLEN + 1);
  buf_t want;
  buf_init(&want);
  buf_adds(&want, "p:s,objective\n");
  size_t r = 0;
  for (size_t n = 0; n <= MAXLEN; n++)
    for (size_t at = 0; at <= n + 1 && r < NROWS; at++, r++) { /* at == n: no special byte */
      char *t = text + r * (MAXLEN + 1);
      for (size_t i = 0; i < n; i++) t[i] = (char)('a' + (i + r) % 26);
      if (at < n) t[at] = specials[r % (sizeof specials - 1)];
      if (at == n + 1 && n > 2) t[1] = '\0'; /* a NUL byte, written as it is */
      cells[2 * r] = t, lens[2 * r] = n;
      cells[2 * r + 1] = "-1.5e-07", lens[2 * r + 1] = 8, plain[2 * r + 1] = 1;
      ref_cell(&want, t, n);
      buf_adds(&want, ",-1.5e-07\n");
    }
  csv_table tab = {cols, 2, cells, r, lens, plain};
  CHECK(csv_append(path, &tab, 0, err, sizeof err) == 0, "%s", err);
  size_t got_len = 0;
  char *got = check_read_file(path, &got_len);
  CHECK(got && got_len == want.len && memcmp(got, want.data, want.len) == 0,
        "%zu rows of 0..%d bytes: %zu bytes written, %zu expected", r, MAXLEN, got_len, want.len);
  free(got), free(cells), free(lens), free(plain), free(text), free(path);
  buf_free(&want);
}

static void open_quote(const char *dir) {
  char err[512] = "", *path = path_in(dir, "q.csv");
  const char *cols[] = {"p:x", "job_id"};
  const char *rows[] = {"1", "1"};
  check_write_file(path, "p:x,job_id\n\"open,0\n");
  CHECK(append(path, cols, 2, rows, 1, err) == 0, "%s", err);
  expect_file(path, "p:x,job_id\n\"open,0\n\"\n1,1\n", "append closes the quote");
  check_write_file(path, "p:x,job_id\n\"open,0\n");
  const char *wide[] = {"p:x", "job_id", "p:y"};
  const char *wrows[] = {"1", "1", "y"};
  CHECK(append(path, wide, 3, wrows, 1, err) == 0, "%s", err);
  expect_file(path, "p:x,p:y,job_id\n\"open,0\n\",,\n1,y,1\n", "rewrite closes the quote");
  /* Another writer opens a quote after our last append: the scan from our mark still sees it. */
  FILE *other = fopen(path, "a");
  CHECK(other && fputs("\"again,2\n", other) >= 0 && fclose(other) == 0, "the other writer");
  CHECK(append(path, wide, 3, wrows, 1, err) == 0, "%s", err);
  expect_file(path, "p:x,p:y,job_id\n\"open,0\n\",,\n1,y,1\n\"again,2\n\"\n1,y,1\n", "a quote opened after our mark");
  check_write_file(path, "p:x,job_id\n\"a\"\"\",\"b\"\n"); /* closed quotes, an escaped one at the end */
  CHECK(append(path, cols, 2, rows, 1, err) == 0, "%s", err);
  expect_file(path, "p:x,job_id\n\"a\"\"\",\"b\"\n1,1\n", "a closed quote is left alone");
  free(path);
}

static void header_grows_under_rewrite(const char *dir) {
  char err[512] = "", *path = path_in(dir, "g.csv");
  check_write_file(path, "p:a,p:b");
  grow_path = path;
  grow_text = ",p:c01,p:c02,p:c03,p:c04,p:c05,p:c06,p:c07,p:c08,p:c09,p:c10,p:c11,p:c12\n1,2,3,4,5,6,7,8,9,10,11,12,13,14\n";
  const char *cols[] = {"p:a", "p:z"};
  const char *rows[] = {"A", "Z"};
  CHECK(append(path, cols, 2, rows, 1, err) == 0, "%s", err);
  CHECK(grow_text == NULL, "the file grew during the call");
  expect_file(path,
              "p:a,p:b,p:c01,p:c02,p:c03,p:c04,p:c05,p:c06,p:c07,p:c08,p:c09,p:c10,p:c11,p:c12,p:z\n"
              "1,2,3,4,5,6,7,8,9,10,11,12,13,14,\nA,,,,,,,,,,,,,,Z\n",
              "rewrite maps the header it read in full");
  free(path);
}

static const char *mode_of(const char *path, char *out) {
  struct stat st;
  if (stat(path, &st) < 0) return "(none)";
  sprintf(out, "%o", (unsigned)(st.st_mode & 07777));
  return out;
}

static void links_and_modes(const char *dir) {
  char err[512] = "", m[16];
  char *victim = path_in(dir, "victim"), *link = path_in(dir, "link.csv"), *path = path_in(dir, "m.csv");
  check_write_file(victim, "secret\n");
  CHECK(chmod(victim, 0600) == 0, "chmod");
  CHECK(symlink("victim", link) == 0, "symlink");
  const char *cols[] = {"p:x"};
  const char *rows[] = {"1"};
  CHECK(append(link, cols, 1, rows, 1, err) == -1 && strstr(err, "symbolic link") && strstr(err, "link.csv"), "%s",
        err);
  expect_file(victim, "secret\n", "the link's target");
  mode_t old = umask(027);
  CHECK(append(path, cols, 1, rows, 1, err) == 0, "%s", err);
  umask(old);
  CHECK(strcmp(mode_of(path, m), "640") == 0, "new file mode %s", m);
  CHECK(chmod(path, 0604) == 0, "chmod");
  const char *wide[] = {"p:x", "p:y"};
  const char *wrows[] = {"2", "y"};
  CHECK(append(path, wide, 2, wrows, 1, err) == 0, "%s", err);
  CHECK(strcmp(mode_of(path, m), "604") == 0, "rewritten file mode %s", m);
  free(victim), free(link), free(path);
}

typedef struct writer {
  const char *path, *name;
  int failures;
} writer;

/* 200 appends of 5 rows; every 10th brings a new column, so rewrites race with appends. */
static void *write_rows(void *arg) {
  writer *w = arg;
  char cells[5][3][32], col[32], err[512];
  for (int k = 0; k < 200; k++) {
    snprintf(col, sizeof col, "p:%s%03d", w->name, k / 10);
    const char *cols[] = {"p:who", "job_id", col};
    const char *flat[15];
    for (int r = 0; r < 5; r++) {
      snprintf(cells[r][0], 32, "%s", w->name);
      snprintf(cells[r][1], 32, "%d", k * 5 + r);
      snprintf(cells[r][2], 32, "v");
      for (int c = 0; c < 3; c++) flat[r * 3 + c] = cells[r][c];
    }
    if (append(w->path, cols, 3, flat, 5, err)) {
      fprintf(stderr, "writer %s: %s\n", w->name, err);
      w->failures++;
    }
  }
  return NULL;
}

/* Records of a file this test wrote (no quotes): count lines that start with who. */
static void threads_take_turns(const char *dir) {
  char *path = path_in(dir, "t.csv");
  writer a = {path, "a", 0}, b = {path, "b", 0};
  pthread_t ta, tb;
  CHECK(pthread_create(&ta, NULL, write_rows, &a) == 0 && pthread_create(&tb, NULL, write_rows, &b) == 0, "threads");
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(a.failures == 0 && b.failures == 0, "%d and %d failed appends", a.failures, b.failures);
  char *text = check_read_file(path, NULL);
  int rows_a = 0, rows_b = 0, headers = 0, dup = 0, who = -1, id_at = -1;
  char seen[2][1000] = {{0}};
  for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
    char *field[64];
    int nf = 0;
    for (char *f = line; nf < 64; f = strchr(f, ',') + 1) {
      field[nf++] = f;
      if (!strchr(f, ',')) break;
    }
    if (strncmp(line, "p:", 2) == 0) {
      headers++;
      for (int k = 0; k < nf; k++) {
        if (strncmp(field[k], "p:who,", 6) == 0 || strcmp(field[k], "p:who") == 0) who = k;
        if (strncmp(field[k], "job_id", 6) == 0) id_at = k;
      }
      continue;
    }
    if (who < 0 || id_at < 0 || who >= nf || id_at >= nf) continue;
    int id = atoi(field[id_at]), b = field[who][0] == 'b';
    if (id < 0 || id >= 1000) continue;
    dup += seen[b][id]++ > 0;
    b ? rows_b++ : rows_a++;
  }
  CHECK(headers == 1 && rows_a == 1000 && rows_b == 1000 && dup == 0, "%d headers, %d + %d rows, %d twice", headers,
        rows_a, rows_b, dup);
  free(text);
  free(path);
}

static void refusals(const char *dir) {
  char err[512] = "", *path = path_in(dir, "bad.csv");
  const char *cols[] = {"p:new"};
  const char *rows[] = {"1"};
  check_write_file(path, "p:a,p:a\n1,2\n");
  CHECK(append(path, cols, 1, rows, 1, err) == -1 && strstr(err, "names column \"p:a\" twice"), "%s", err);
  check_write_file(path, "p:a\n1,2\n");
  CHECK(append(path, cols, 1, rows, 1, err) == -1 && strstr(err, "record 2 has 2 fields but the header has 1"), "%s",
        err);
  expect_file(path, "p:a\n1,2\n", "a refused file is left as it was");
  CHECK(append("/no/such/dir/r.csv", cols, 1, rows, 1, err) == -1 &&
            strstr(err, "cannot open \"/no/such/dir/r.csv\" for appending: No such file or directory"),
        "%s", err);
  const char *twice[] = {"p:a", "p:a"};
  const char *rows2[] = {"1", "2"};
  CHECK(append(path, twice, 2, rows2, 1, err) == -1 && strstr(err, "column \"p:a\" given twice"), "%s", err);
  free(path);
}

int main(void) {
  char *dir = check_tmpdir();
  column_order();
  new_append_widen(dir);
  lengths_and_plain(dir);
  open_quote(dir);
  header_grows_under_rewrite(dir);
  links_and_modes(dir);
  threads_take_turns(dir);
  refusals(dir);
  check_rmdir(dir);
  return check_summary("csv");
}
