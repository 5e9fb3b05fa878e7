/* test_journal.c: unit tests of the SQLite storage's journal file (src/storage_journal.c): entries
 * read back as written, a cut-short end is the end, damage (a changed length included) is an
 * error; the ring: a full one refuses an entry, a folded one starts a new lap, and what a kill
 * leaves of an interrupted entry ends the log; the file is made safely and removed at close;
 * replay folds the journal of a dead writer once, never a live one's, another database's, a link,
 * or a file that failed to fold. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "storage_journal.h"

static char *dir;

static char *path_in(const char *name) {
  static char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static int exists(const char *name) { return access(path_in(name), F_OK) == 0; }

#define DB_ID "1111111111111111"
#define J(db, token) db "-evl-" DB_ID "-" token

/* Entries "e1", "e22", ... appended to a new journal of db, token "00000000000000a1". */
static void append_some(journal_t *j, const char *db, int n) {
  char err[256];
  journal_init(j, db, DB_ID, "00000000000000a1");
  for (int i = 1; i <= n; i++) {
    char e[32];
    snprintf(e, sizeof e, "e%.*s", i, "222222222");
    CHECK(journal_append(j, e, strlen(e), err, sizeof err) == 0, "append %d: %s", i, err);
  }
}

static void entries_read_back(void) {
  journal_t j;
  char db[4096];
  snprintf(db, sizeof db, "%s", path_in("a.db"));
  append_some(&j, db, 3);
  struct stat st;
  CHECK(stat(path_in(J("a.db", "00000000000000a1")), &st) == 0 && (st.st_mode & 0777) == (0644 & ~(mode_t)022),
        "made with mode 0644 under umask 022");
  size_t size, len = j.unfolded; /* len: the log's bytes */
  char *bytes = check_read_file(path_in(J("a.db", "00000000000000a1")), &size);
  CHECK(bytes && size == JOURNAL_RING && memcmp(bytes, journal_unfolded(&j), len) == 0, "the file holds what is kept");
  CHECK(bytes && memcmp(bytes + len, "\0\0\0\0", 4) == 0, "then a zero magic: the end mark");
  const char *p = bytes, *payload;
  uint64_t seq;
  size_t n;
  for (int i = 1; i <= 3; i++) {
    CHECK(journal_next(&p, bytes + len, &seq, &payload, &n) == 1 && seq == (uint64_t)i && n == (size_t)i + 1 &&
              payload[0] == 'e',
          "entry %d", i);
  }
  CHECK(journal_next(&p, bytes + size, &seq, &payload, &n) == 0 && p == bytes + len, "then the end");
  /* every cut inside the last entry is a write a kill cut short: the end, after two entries */
  for (size_t cut = len - 1; cut > len - 36; cut--) {
    p = bytes;
    int k = 0;
    while (journal_next(&p, bytes + cut, &seq, &payload, &n) == 1) k++;
    CHECK(k == 2 && journal_next(&p, bytes + cut, &seq, &payload, &n) == 0, "cut at %zu: %d entries", cut, k);
  }
  /* one byte changed inside an entry, its length or its magic: damage */
  for (size_t at = 0; at < 34; at++) {
    bytes[at] ^= 0x10;
    p = bytes;
    CHECK(journal_next(&p, bytes + len, &seq, &payload, &n) == -1, "byte %zu changed", at);
    bytes[at] ^= 0x10;
  }
  free(bytes);
  journal_folded(&j);
  CHECK(j.unfolded == 0, "folded: nothing waits");
  CHECK(journal_close(&j) == 1, "close says it removed the file (its record may go)");
  CHECK(!exists(J("a.db", "00000000000000a1")), "removed at close once folded");
  CHECK(journal_close(&j) == 0, "closed twice: removed once");
}

/* The entries of the log in the file of j, from its front: how many, and the number of the first. */
static int entries_in_file(journal_t *j, uint64_t *first) {
  size_t size;
  char *bytes = check_read_file(j->path, &size);
  const char *p = bytes, *payload;
  uint64_t seq;
  size_t n;
  int k = 0, rc;
  while ((rc = journal_next(&p, bytes + size, &seq, &payload, &n)) == 1)
    if (k++ == 0) *first = seq;
  free(bytes);
  return rc < 0 ? -1 : k;
}

/* A 512-byte ring: three 132-byte entries fill it (each needs room for the end mark after it). */
static void ring_laps(void) {
  journal_t j;
  char db[4096], err[256], e[100];
  snprintf(db, sizeof db, "%s", path_in("r.db"));
  journal_init(&j, db, DB_ID, "00000000000000d4");
  j.ring = 512;
  memset(e, 'x', sizeof e);
  for (int i = 1; i <= 3; i++) CHECK(journal_append(&j, e, sizeof e, err, sizeof err) == 0, "append %d: %s", i, err);
  CHECK(journal_append(&j, e, sizeof e, err, sizeof err) == -1 && strstr(err, "is full"), "full: %s", err);
  CHECK(j.unfolded == 3 * 132 && j.seq == 3, "a refused entry changes nothing");
  uint64_t first = 0;
  CHECK(entries_in_file(&j, &first) == 3 && first == 1, "the first lap");
  journal_folded(&j);
  CHECK(journal_append(&j, e, sizeof e, err, sizeof err) == 0, "folded: a new lap: %s", err);
  CHECK(entries_in_file(&j, &first) == 1 && first == 4, "the new lap's entry only, not the last lap's behind it");
  CHECK(journal_append(&j, e, 40, err, sizeof err) == 0, "%s", err);
  CHECK(entries_in_file(&j, &first) == 2 && first == 4, "the lap goes on");
  /* a kill before an entry's magic was written: the log ends before it, nothing damaged */
  memset(j.map + 132, 0, 4);
  CHECK(entries_in_file(&j, &first) == 1 && first == 4, "an interrupted entry ends the log");
  /* a kill after a new lap's front was zeroed: an empty log */
  memset(j.map, 0, 4);
  CHECK(entries_in_file(&j, &first) == 0, "an empty lap");
  journal_folded(&j);
  CHECK(journal_append(&j, e, sizeof e, err, sizeof err) == 0, "%s", err);
  char big[600];
  memset(big, 'y', sizeof big);
  journal_folded(&j);
  CHECK(journal_append(&j, big, sizeof big, err, sizeof err) == -1 && strstr(err, "is full"), "larger than the ring: %s", err);
  journal_close(&j);
  CHECK(!exists(J("r.db", "00000000000000d4")), "removed at close once folded");
}

/* The real writer killed at random moments: a process appends entries of varied lengths (up to
 * 40 KB) to a small ring, "folding" every few (so that it laps), until SIGKILL. What it leaves always reads as
 * whole entries, numbered in order, then the end: never damage. */
static void killed_writer_leaves_a_log(void) {
  int damaged = 0, runs = 100, read_some = 0;
  static char e[40000]; /* long entries: a kill lands inside their copy often */
  for (int run = 0; run < runs; run++) {
    char db[4096], token[17];
    snprintf(db, sizeof db, "%s", path_in("k.db"));
    snprintf(token, sizeof token, "%016x", 0xe000 + run);
    pid_t pid = fork();
    if (pid == 0) {
      journal_t j;
      char err[256];
      journal_init(&j, db, DB_ID, token);
      j.ring = 200000;
      for (unsigned i = 0;; i++) {
        size_t n = 1 + (i * 7919) % sizeof e;
        memset(e, 'a' + (int)(i % 26), n);
        if (journal_append(&j, e, n, err, sizeof err) != 0) journal_folded(&j); /* full: fold, lap */
        if (i % 7 == 0) journal_folded(&j);
      }
    }
    struct timespec ts = {0, 300000L + (long)(run % 10) * 170000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
    char name[200];
    snprintf(name, sizeof name, "k.db-evl-" DB_ID "-%s", token);
    size_t size;
    char *bytes = check_read_file(path_in(name), &size);
    if (!bytes) continue; /* killed before its first entry */
    const char *p = bytes, *payload;
    uint64_t seq, last = 0;
    size_t n;
    int rc, k = 0;
    while ((rc = journal_next(&p, bytes + size, &seq, &payload, &n)) == 1) {
      if (k++ > 0 && seq != last + 1) rc = -1;
      last = seq;
      if (rc < 0) break;
    }
    if (rc < 0) damaged++;
    if (k > 0) read_some++;
    free(bytes);
    (void)unlink(path_in(name));
  }
  CHECK(damaged == 0, "%d of %d killed writers left a log that reads as damaged", damaged, runs);
  CHECK(read_some > 0, "no killed writer left an entry: the test kills too soon");
}

/* A magic whose store a kill interrupted byte by byte (where a 4-byte copy is not one store):
 * the end of the log, as a zero one; any other byte there is damage. */
static void partly_written_magic(void) {
  char bytes[64] = {0};
  const char *p, *payload;
  uint64_t seq;
  size_t n;
  memcpy(bytes, "EV\0\0", 4);
  p = bytes;
  CHECK(journal_next(&p, bytes + sizeof bytes, &seq, &payload, &n) == 0, "part of the magic: the end");
  memcpy(bytes, "\0\0J1", 4);
  p = bytes;
  CHECK(journal_next(&p, bytes + sizeof bytes, &seq, &payload, &n) == 0, "the other part: the end");
  memcpy(bytes, "EX\0\0", 4);
  p = bytes;
  CHECK(journal_next(&p, bytes + sizeof bytes, &seq, &payload, &n) == -1, "a byte no magic has: damage");
}

static void unfolded_journal_stays(void) {
  journal_t j;
  char db[4096];
  snprintf(db, sizeof db, "%s", path_in("b.db"));
  append_some(&j, db, 2);
  CHECK(journal_close(&j) == 0, "close says it left the file (its record stays)");
  CHECK(exists(J("b.db", "00000000000000a1")), "a journal with unfolded entries is left for a replay");
}

static void planted_file_refused(void) {
  CHECK(check_write_file(path_in(J("c.db", "00000000000000a1")), "planted") == 0, "plant");
  journal_t j;
  char db[4096], err[256];
  snprintf(db, sizeof db, "%s", path_in("c.db"));
  journal_init(&j, db, DB_ID, "00000000000000a1");
  CHECK(journal_append(&j, "x", 1, err, sizeof err) == -1 && strstr(err, "cannot create the journal"), "%s", err);
  char target[4096];
  snprintf(target, sizeof target, "%s", path_in("elsewhere"));
  CHECK(symlink(target, path_in(J("c.db", "00000000000000b2"))) == 0, "plant a link");
  journal_t k;
  journal_init(&k, db, DB_ID, "00000000000000b2");
  CHECK(journal_append(&k, "x", 1, err, sizeof err) == -1, "a planted link is not followed");
  CHECK(!exists("elsewhere"), "nothing made through the link");
  journal_close(&j);
  journal_close(&k);
  journal_init(&j, ":memory:", DB_ID, "00000000000000a1");
  CHECK(!journal_usable(&j), "an in-memory database has no journal");
  journal_close(&j);
}

/* The replay's storage: records what it folds; fails a fold when told to. */
typedef struct folds {
  int begun, ended, fail;
  char names[8][32];
  int entries[8], n;
  char forgotten[8][32];
  int nforgotten;
} folds_t;

static int t_begin(void *ctx, char *err, size_t errlen) {
  (void)err, (void)errlen;
  ((folds_t *)ctx)->begun++;
  return 0;
}

static int t_fold(void *ctx, const char *name, const char *bytes, size_t n, const char *path, char *err, size_t errlen) {
  folds_t *f = ctx;
  if (f->fail) {
    snprintf(err, errlen, "cannot fold %s", path);
    return -1;
  }
  const char *p = bytes, *payload;
  uint64_t seq;
  size_t len;
  int k = 0;
  while (journal_next(&p, bytes + n, &seq, &payload, &len) == 1) k++;
  snprintf(f->names[f->n], sizeof f->names[f->n], "%s", name);
  f->entries[f->n++] = k;
  return 0;
}

static int t_end(void *ctx, int rc, char *err, size_t errlen) {
  (void)err, (void)errlen;
  ((folds_t *)ctx)->ended++;
  return rc;
}

static void t_forget(void *ctx, const char *name) {
  folds_t *f = ctx;
  char file[128];
  snprintf(file, sizeof file, "%s%s", J("b.db", ""), name);
  CHECK(!exists(file), "forgotten only once removed: %s", name);
  if (f->nforgotten < 8) snprintf(f->forgotten[f->nforgotten++], sizeof f->forgotten[0], "%s", name);
}

static const journal_replay_ops OPS = {t_begin, t_fold, t_end, t_forget};

static void replay_dead_once(void) {
  char db[4096], err[256];
  snprintf(db, sizeof db, "%s", path_in("b.db")); /* b.db's journal was left by unfolded_journal_stays */
  journal_t live;
  journal_init(&live, db, DB_ID, "00000000000000c3");
  CHECK(journal_append(&live, "live", 4, err, sizeof err) == 0, "%s", err);
  folds_t f = {0};
  CHECK(journal_replay(db, "2222222222222222", &OPS, &f, err, sizeof err) == 0 && f.n == 0 && f.begun == 0,
        "another database's journal is left alone");
  f.fail = 1;
  CHECK(journal_replay(db, DB_ID, &OPS, &f, err, sizeof err) == -1 && strstr(err, J("b.db", "00000000000000a1")), "%s", err);
  CHECK(exists(J("b.db", "00000000000000a1")), "a journal whose fold failed stays");
  CHECK(f.nforgotten == 0, "and its record too");
  memset(&f, 0, sizeof f);
  CHECK(journal_replay(db, DB_ID, &OPS, &f, err, sizeof err) == 0, "%s", err);
  CHECK(f.begun == 1 && f.ended == 1, "one transaction: %d %d", f.begun, f.ended);
  CHECK(f.n == 1 && strcmp(f.names[0], "00000000000000a1") == 0 && f.entries[0] == 2, "the dead one, by token: %d", f.n);
  CHECK(!exists(J("b.db", "00000000000000a1")), "removed once folded");
  CHECK(f.nforgotten == 1 && strcmp(f.forgotten[0], "00000000000000a1") == 0, "then its record may go: %d", f.nforgotten);
  CHECK(exists(J("b.db", "00000000000000c3")), "the live one is left alone");
  memset(&f, 0, sizeof f);
  CHECK(journal_replay(db, DB_ID, &OPS, &f, err, sizeof err) == 0 && f.n == 0, "nothing folded twice");
  CHECK(f.begun == 1 && f.ended == 1, "a live journal: only a wait for the write lock (%d %d)", f.begun, f.ended);
  journal_folded(&live);
  journal_close(&live);
  memset(&f, 0, sizeof f);
  snprintf(db, sizeof db, "%s", path_in("none.db"));
  CHECK(journal_replay(db, DB_ID, &OPS, &f, err, sizeof err) == 0 && f.begun == 0, "no journal: no transaction");
}

int main(void) {
  umask(022);
  dir = check_tmpdir();
  entries_read_back();
  ring_laps();
  killed_writer_leaves_a_log();
  partly_written_magic();
  unfolded_journal_stays();
  planted_file_refused();
  replay_dead_once();
  check_rmdir(dir);
  return check_summary("test_journal");
}
