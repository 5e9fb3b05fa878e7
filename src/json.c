/* json.c: JSON encoding of Lua values (sorted keys, key paths in error messages) and a strict decoder.
 * Everything works on its arguments and the given lua_State only, so threads never share state. */
#include "json.h"
#include "numfmt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* ---------------------------------------------------------------- encoding */

typedef struct enc {
  lua_State *L;
  buf_t *out;
  char *err;
  size_t errlen;
  int rc;
} enc;

enum { STEP_NAME, STEP_INDEX, STEP_TEXT };

/* One step of the key path from the root to the value being encoded. Steps live on the C stack and
 * are only turned into text when an error needs them, so encoding a big array costs nothing here. */
typedef struct step {
  const struct step *up;
  const void *table; /* the table the step leaves from: an ancestor, for cycle detection */
  int kind;          /* STEP_NAME: .key; STEP_INDEX: [index]; STEP_TEXT: [key] */
  const char *key;
  size_t keylen;
  lua_Integer index;
} step;

static void path_add(buf_t *b, const step *s) {
  if (!s) return;
  path_add(b, s->up);
  if (s->kind == STEP_NAME) {
    if (b->len) buf_addc(b, '.');
    buf_add(b, s->key, s->keylen);
  } else if (s->kind == STEP_INDEX) {
    buf_addf(b, "[%lld]", (long long)s->index);
  } else {
    buf_addc(b, '[');
    buf_add(b, s->key, s->keylen);
    buf_addc(b, ']');
  }
}

static int enc_fail(enc *e, const step *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int enc_fail(enc *e, const step *at, const char *fmt, ...) {
  char what[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (!e->err || !e->errlen) return -1;
  if (!at) {
    snprintf(e->err, e->errlen, "value %s", what);
    return -1;
  }
  buf_t p;
  buf_init(&p);
  path_add(&p, at);
  /* Keep the end of a very long path, the part nearest the culprit, so the reason still fits. */
  size_t keep = p.len > 200 ? 200 : p.len;
  while (keep < p.len && keep > 0 && p.data[p.len - keep] != '[' && p.data[p.len - keep] != '.') keep--;
  if (keep < p.len && keep > 0 && p.data[p.len - keep] == '.') keep--; /* "...b.c", not "....b.c" */
  snprintf(e->err, e->errlen, "value at \"%s%.*s\" %s", keep < p.len ? "..." : "", (int)keep,
           p.data + p.len - keep, what);
  buf_free(&p);
  return -1;
}

/* The characters with a one-letter escape, and their letters. */
#define ESC_CHARS "\"\\/\b\f\n\r\t"
#define ESC_LETTERS "\"\\/bfnrt"

/* Length (2..4) of the UTF-8 sequence at s with its code point in *cp, or 0 when the bytes are not
 * UTF-8. 3-byte surrogates pass: the caller escapes them so lone \uD800 survives a round trip. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp) {
  unsigned c = s[0];
  size_t k = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
  if (k == 0 || k > n) return 0;
  unsigned v = c & (0x7F >> k);
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < min[k] || v > 0x10FFFF) return 0; /* overlong or beyond Unicode */
  *cp = v;
  return k;
}

static void encode_string(buf_t *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run = 0; /* s[run..i) is plain text still to copy */
  buf_addc(b, '"');
  while (i < n) {
    unsigned c = s[i], cp = 0;
    size_t k = 1;
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    if (c >= 0x80 && (k = utf8_seq(s + i, n - i, &cp)) > 0 && (cp < 0xD800 || cp > 0xDFFF)) {
      i += k;
      continue;
    }
    buf_add(b, s + run, i - run);
    const char *named = c && c < 0x80 ? strchr(ESC_CHARS, (int)c) : NULL;
    if (named)
      buf_addc(b, '\\'), buf_addc(b, ESC_LETTERS[named - ESC_CHARS]);
    else /* a surrogate (k == 3), a control byte, or a stray byte (k == 0: lossy, see json.h) */
      buf_addf(b, "\\u%04x", k == 3 ? cp : c);
    i += k ? k : 1;
    run = i;
  }
  buf_add(b, s + run, i - run);
  buf_addc(b, '"');
}

static void encode_number(buf_t *b, lua_State *L, int idx) {
  double d = lua_tonumber(L, idx);
  char num[32];
  if (lua_isinteger(L, idx))
    buf_addf(b, "%lld", (long long)lua_tointeger(L, idx));
  else if (!isfinite(d))
    buf_adds(b, isnan(d) ? "NaN" : d < 0 ? "-Infinity" : "Infinity");
  else
    fmt_double(d, num), buf_adds(b, num);
}

static int encode_value(enc *e, int idx, const step *at, int depth);

/* Whether the table's keys are exactly 1..n; *count gets the number of keys. */
static int is_sequence(lua_State *L, int idx, lua_Integer *count) {
  lua_Integer n = 0, max = 0;
  int seq = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    n++;
    if (!seq) continue;
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
      seq = 0;
    else if (lua_tointeger(L, -1) > max)
      max = lua_tointeger(L, -1);
  }
  *count = n;
  return seq && max == n; /* n distinct integers in 1..max with max == n: exactly 1..n */
}

static int encode_array(enc *e, int idx, const step *at, int depth, lua_Integer n) {
  lua_State *L = e->L;
  step st = {at, lua_topointer(L, idx), STEP_INDEX, NULL, 0, 0};
  buf_addc(e->out, '[');
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) buf_addc(e->out, ',');
    lua_rawgeti(L, idx, i);
    st.index = i;
    int rc = encode_value(e, lua_gettop(L), &st, depth);
    lua_pop(L, 1);
    if (rc) return -1;
  }
  buf_addc(e->out, ']');
  return 0;
}

enum { RANK_STRING, RANK_NUMBER, RANK_BOOLEAN };

/* An object key: its text for sorting and output, and its slot in the table of keys kept on the
 * stack (the key itself is needed again to fetch the value). */
typedef struct entry {
  const char *s; /* string keys: the Lua string; others: NULL, text in num */
  size_t len;
  int rank;
  lua_Integer slot;
  char num[32];
} entry;

static const char *entry_text(const entry *x) { return x->rank == RANK_STRING ? x->s : x->num; }

static int entry_cmp(const void *pa, const void *pb) {
  const entry *a = pa, *b = pb;
  int c = memcmp(entry_text(a), entry_text(b), a->len < b->len ? a->len : b->len);
  if (c) return c;
  if (a->len != b->len) return a->len < b->len ? -1 : 1;
  return a->rank - b->rank; /* 1 and "1": strings first, so the order never depends on pairs() */
}

/* Fill x from the key at the top of the stack; returns 0, or -1 for keys JSON cannot name. */
static int entry_set(lua_State *L, entry *x) {
  int t = lua_type(L, -1);
  x->rank = t == LUA_TSTRING ? RANK_STRING : t == LUA_TNUMBER ? RANK_NUMBER : RANK_BOOLEAN;
  if (t == LUA_TSTRING) {
    x->s = lua_tolstring(L, -1, &x->len);
    return 0;
  }
  if (t == LUA_TBOOLEAN)
    strcpy(x->num, lua_toboolean(L, -1) ? "true" : "false");
  else if (lua_isinteger(L, -1))
    snprintf(x->num, sizeof x->num, "%lld", (long long)lua_tointeger(L, -1));
  else if (t == LUA_TNUMBER)
    fmt_double(lua_tonumber(L, -1), x->num);
  else
    return -1;
  x->s = NULL;
  x->len = strlen(x->num);
  return 0;
}

static int encode_object(enc *e, int idx, const step *at, int depth, lua_Integer n) {
  lua_State *L = e->L;
  int base = lua_gettop(L);
  if ((size_t)n > ((size_t)-1) / sizeof(entry) || n > INT32_MAX)
    return enc_fail(e, at, "is a table too large to encode");
  lua_createtable(L, (int)n, 0);
  int keys = lua_gettop(L);
  entry *ents = lua_newuserdatauv(L, (size_t)n * sizeof(entry), 0);
  lua_Integer k = 0;
  lua_pushnil(L);
  while (k < n && lua_next(L, idx)) {
    lua_pop(L, 1);
    if (entry_set(L, &ents[k]) < 0) {
      const char *tn = luaL_typename(L, -1);
      lua_settop(L, base);
      return enc_fail(e, at, "has a %s key: cannot encode", tn);
    }
    ents[k].slot = k + 1;
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, ++k);
  }
  lua_settop(L, keys + 1);
  qsort(ents, (size_t)k, sizeof(entry), entry_cmp);

  step st = {at, lua_topointer(L, idx), STEP_NAME, NULL, 0, 0};
  buf_addc(e->out, '{');
  for (lua_Integer i = 0; i < k; i++) {
    const entry *x = &ents[i];
    if (i > 0) buf_addc(e->out, ',');
    encode_string(e->out, entry_text(x), x->len);
    buf_addc(e->out, ':');
    lua_rawgeti(L, keys, x->slot);
    lua_rawget(L, idx);
    st.kind = x->rank == RANK_STRING ? STEP_NAME : STEP_TEXT;
    st.key = entry_text(x);
    st.keylen = x->len;
    if (encode_value(e, lua_gettop(L), &st, depth)) {
      lua_settop(L, base);
      return -1;
    }
    lua_pop(L, 1);
  }
  buf_addc(e->out, '}');
  lua_settop(L, base);
  return 0;
}

static int encode_table(enc *e, int idx, const step *at, int depth) {
  lua_State *L = e->L;
  if (depth > JSON_MAX_DEPTH) return enc_fail(e, at, "is nested deeper than %d levels", JSON_MAX_DEPTH);
  const void *self = lua_topointer(L, idx);
  for (const step *s = at; s; s = s->up)
    if (s->table == self) return enc_fail(e, at, "is a cyclic table");
  if (!lua_checkstack(L, 8)) return enc_fail(e, at, "cannot be encoded: Lua stack overflow");
  lua_Integer n;
  /* The empty table passes as a sequence: [], as Lua code mostly means a list by it. */
  return is_sequence(L, idx, &n) ? encode_array(e, idx, at, depth, n) : encode_object(e, idx, at, depth, n);
}

static int encode_value(enc *e, int idx, const step *at, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: buf_adds(e->out, "null"); return 0;
  case LUA_TBOOLEAN: buf_adds(e->out, lua_toboolean(L, idx) ? "true" : "false"); return 0;
  case LUA_TNUMBER: encode_number(e->out, L, idx); return 0;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return encode_string(e->out, s, n), 0;
  }
  case LUA_TTABLE: return encode_table(e, idx, at, depth + 1);
  case LUA_TLIGHTUSERDATA:
    if (!lua_touserdata(L, idx)) return buf_adds(e->out, "null"), 0; /* json_null, cjson.null */
    /* fall through */
  default: return enc_fail(e, at, "is a %s: cannot encode", luaL_typename(L, idx));
  }
}

/* Runs f(ctx, value) in protected mode, so that a memory error raised by the Lua API inside lets
 * the caller free its C buffer before it is raised again (never leaked on a longjmp). Leaves f's
 * one result (or nil) on the stack. */
static void call_protected(lua_State *L, lua_CFunction f, void *ctx, int value, buf_t *owned) {
  if (!lua_checkstack(L, 3)) luaL_error(L, "Lua stack overflow");
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, ctx);
  if (value) lua_pushvalue(L, value);
  else lua_pushnil(L);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    buf_free(owned);
    lua_error(L);
  }
}

static int encode_protected(lua_State *L) {
  enc *e = lua_touserdata(L, 1);
  e->L = L;
  e->rc = encode_value(e, 2, NULL, 0);
  return 0;
}

int json_encode(lua_State *L, int idx, buf_t *out, char *err, size_t errlen) {
  enc e = {L, out, err, errlen, 0};
  int top = lua_gettop(L);
  call_protected(L, encode_protected, &e, lua_absindex(L, idx), out);
  lua_settop(L, top);
  return e.rc;
}

/* ---------------------------------------------------------------- decoding */

typedef struct dec {
  lua_State *L;
  const char *s, *p, *end;
  buf_t str; /* scratch for the bytes of the string being decoded */
  char *err;
  size_t errlen;
  int rc;
} dec;

static int dec_fail(dec *d, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dec_fail(dec *d, const char *at, const char *fmt, ...) {
  char what[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (d->err && d->errlen)
    snprintf(d->err, d->errlen, "invalid JSON at offset %zu: %s", (size_t)(at - d->s), what);
  return -1;
}

static int dec_unexpected(dec *d) {
  if (d->p >= d->end) return dec_fail(d, d->p, "unexpected end of input");
  unsigned char c = (unsigned char)*d->p;
  if (c > 0x20 && c < 0x7F) return dec_fail(d, d->p, "unexpected character '%c'", c);
  return dec_fail(d, d->p, "unexpected byte 0x%02x", c);
}

static void skip_ws(dec *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) d->p++;
}

/* Consume lit when the input starts with it. */
static int eat(dec *d, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0) return 0;
  d->p += n;
  return 1;
}

static int at_char(const dec *d, char c) { return d->p < d->end && *d->p == c; }

static int is_digit(const dec *d) { return d->p < d->end && *d->p >= '0' && *d->p <= '9'; }

static int parse_number(dec *d) {
  const char *start = d->p;
  int integral = 1;
  if (*d->p == '-') d->p++;
  if (!is_digit(d)) return dec_fail(d, start, "invalid number");
  if (*d->p++ != '0')
    while (is_digit(d)) d->p++;
  if (d->p < d->end && *d->p == '.') {
    d->p++, integral = 0;
    if (!is_digit(d)) return dec_fail(d, start, "invalid number");
    while (is_digit(d)) d->p++;
  }
  if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
    d->p++, integral = 0;
    if (d->p < d->end && (*d->p == '+' || *d->p == '-')) d->p++;
    if (!is_digit(d)) return dec_fail(d, start, "invalid number");
    while (is_digit(d)) d->p++;
  }
  /* strtod and strtoll need a terminated copy: the input is a counted string. */
  size_t n = (size_t)(d->p - start);
  char small[64], *text = n < sizeof small ? small : xmalloc(n + 1);
  memcpy(text, start, n);
  text[n] = '\0';
  errno = 0;
  long long i = integral ? strtoll(text, NULL, 10) : 0;
  if (integral && errno != ERANGE)
    lua_pushinteger(d->L, (lua_Integer)i);
  else
    lua_pushnumber(d->L, strtod(text, NULL)); /* too big for int64: a float, as the spec asks */
  if (text != small) free(text);
  return 0;
}

static int hex4(const char *p, const char *end, unsigned *out) {
  static const char digits[] = "0123456789abcdef0123456789ABCDEF";
  *out = 0;
  for (int i = 0; i < 4; i++) {
    const char *h = p + i < end && p[i] ? strchr(digits, p[i]) : NULL;
    if (!h) return -1;
    *out = *out << 4 | (unsigned)((h - digits) & 15);
  }
  return 0;
}

/* Lone surrogates get their 3-byte form too: see json.h. */
static void put_utf8(buf_t *b, unsigned cp) {
  static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
  char u[4];
  int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  for (int i = n - 1; i > 0; i--, cp >>= 6) u[i] = (char)(0x80 | (cp & 0x3F));
  u[0] = (char)(lead[n] | cp);
  buf_add(b, u, (size_t)n);
}

/* d->p is just after "\u"; on return it is after the escape (and its low half, if paired). */
static int parse_unicode(dec *d, const char *esc) {
  unsigned cp, lo;
  if (hex4(d->p, d->end, &cp)) return dec_fail(d, esc, "invalid \\u escape");
  d->p += 4;
  if (cp >= 0xD800 && cp < 0xDC00 && d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u' &&
      hex4(d->p + 2, d->end, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    d->p += 6;
  }
  put_utf8(&d->str, cp);
  return 0;
}

static int parse_escape(dec *d) {
  const char *esc = d->p++;
  if (d->p >= d->end) return dec_fail(d, esc, "unterminated string");
  char c = *d->p++;
  const char *letter = c ? strchr(ESC_LETTERS, c) : NULL;
  if (c == 'u') return parse_unicode(d, esc);
  if (!letter) return dec_fail(d, esc, "invalid escape");
  buf_addc(&d->str, ESC_CHARS[letter - ESC_LETTERS]);
  return 0;
}

/* Decode the string at d->p (on its opening quote) into d->str. */
static int parse_string(dec *d) {
  const char *open = d->p++;
  d->str.len = 0;
  for (;;) {
    const char *run = d->p;
    while (d->p < d->end && *d->p != '"' && *d->p != '\\' && (unsigned char)*d->p >= 0x20) d->p++;
    buf_add(&d->str, run, (size_t)(d->p - run));
    if (d->p >= d->end) return dec_fail(d, open, "unterminated string");
    if (*d->p == '"') break;
    if (*d->p != '\\') return dec_fail(d, d->p, "control character in string");
    if (parse_escape(d)) return -1;
  }
  d->p++;
  return 0;
}

static int parse_value(dec *d, int depth);

/* Error for a missing `what` at d->p; running out of input is reported as such. */
static int dec_expected(dec *d, const char *what) {
  return d->p >= d->end ? dec_unexpected(d) : dec_fail(d, d->p, "expected %s", what);
}

static int open_container(dec *d, int depth) {
  if (depth >= JSON_MAX_DEPTH) return dec_fail(d, d->p, "nesting deeper than %d levels", JSON_MAX_DEPTH);
  if (!lua_checkstack(d->L, 4)) return dec_fail(d, d->p, "Lua stack overflow");
  d->p++;
  lua_newtable(d->L);
  skip_ws(d);
  return 0;
}

static int parse_object(dec *d, int depth) {
  lua_State *L = d->L;
  if (open_container(d, depth)) return -1;
  for (int first = 1;; first = 0) {
    if (first && at_char(d, '}')) break;
    skip_ws(d);
    if (!at_char(d, '"')) return dec_expected(d, "string key");
    if (parse_string(d)) return -1;
    lua_pushlstring(L, d->str.data ? d->str.data : "", d->str.len);
    skip_ws(d);
    if (!at_char(d, ':')) return dec_expected(d, "':'");
    d->p++;
    if (parse_value(d, depth + 1)) return -1;
    lua_rawset(L, -3);
    skip_ws(d);
    if (at_char(d, '}')) break;
    if (!at_char(d, ',')) return dec_expected(d, "',' or '}'");
    d->p++;
  }
  d->p++;
  return 0;
}

static int parse_array(dec *d, int depth) {
  lua_State *L = d->L;
  if (open_container(d, depth)) return -1;
  for (lua_Integer i = 1;; i++) {
    if (i == 1 && at_char(d, ']')) break;
    if (parse_value(d, depth + 1)) return -1;
    lua_rawseti(L, -2, i);
    skip_ws(d);
    if (at_char(d, ']')) break;
    if (!at_char(d, ',')) return dec_expected(d, "',' or ']'");
    d->p++;
  }
  d->p++;
  return 0;
}

static int parse_value(dec *d, int depth) {
  lua_State *L = d->L;
  skip_ws(d);
  if (at_char(d, '{')) return parse_object(d, depth);
  if (at_char(d, '[')) return parse_array(d, depth);
  if (at_char(d, '"')) {
    if (parse_string(d)) return -1;
    lua_pushlstring(L, d->str.data ? d->str.data : "", d->str.len);
  } else if (eat(d, "-Infinity")) lua_pushnumber(L, -HUGE_VAL);
  else if (at_char(d, '-') || is_digit(d)) return parse_number(d);
  else if (eat(d, "true")) lua_pushboolean(L, 1);
  else if (eat(d, "false")) lua_pushboolean(L, 0);
  else if (eat(d, "null")) depth ? lua_pushlightuserdata(L, NULL) : lua_pushnil(L);
  else if (eat(d, "NaN")) lua_pushnumber(L, NAN);
  else if (eat(d, "Infinity")) lua_pushnumber(L, HUGE_VAL);
  else return dec_unexpected(d);
  return 0;
}

static int decode_protected(lua_State *L) {
  dec *d = lua_touserdata(L, 1);
  d->L = L;
  d->rc = parse_value(d, 0);
  if (d->rc == 0) {
    skip_ws(d);
    if (d->p < d->end) d->rc = dec_fail(d, d->p, "unexpected data after the value");
  }
  return d->rc == 0;
}

int json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen) {
  dec d = {L, s, s, s + len, {NULL, 0, 0}, err, errlen, 0};
  call_protected(L, decode_protected, &d, 0, &d.str);
  buf_free(&d.str);
  if (d.rc) lua_pop(L, 1);
  return d.rc;
}
