/* selector_meta.c: reading a server's rpcx metadata the way rpcx reads it
 * (Go's url.ParseQuery, strconv.Atoi, strconv.ParseFloat), and the
 * distance between two positions for Closest. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster/cluster.h"

/* In place, for a NUL-terminated string. */
static int unescape(char *s) {
  size_t n;

  if (mrpc__query_unescape(s, strlen(s), s, &n) < 0)
    return -1;
  s[n] = '\0';
  return 0;
}

/* strconv.Atoi: an optional sign and decimal digits, nothing else, within
 * 64 bits. -1 when `s` is not such a number. */
static int parse_int(const char *s, int64_t *out) {
  int neg = 0;
  uint64_t v = 0, lim;

  if (*s == '+' || *s == '-')
    neg = *s++ == '-';
  if (*s == '\0')
    return -1;
  lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    if (v > (lim - (uint64_t)(*s - '0')) / 10)
      return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* A finite decimal within [-limit, limit]. strtod accepts what Go's
 * ParseFloat does save underscores; leading blanks, which Go rejects, are
 * refused here. strtod reads '.' as the decimal point only in the "C"
 * numeric locale, which libmoonrpc's hosts are expected to keep. */
static int parse_coord(const char *s, double limit, double *out) {
  char *end;
  double v;

  if (*s == '\0' || *s == ' ' || *s == '\t' || *s == '\n')
    return -1;
  errno = 0;
  v = strtod(s, &end);
  if (*end != '\0' || errno == ERANGE || !isfinite(v) || v < -limit ||
      v > limit)
    return -1;
  *out = v;
  return 0;
}

int mrpc__meta_parse(const char *meta, const char *group, mrpc__meta_t *out) {
  const char *state = NULL, *weight = NULL, *lat = NULL, *lon = NULL;
  size_t len = meta != NULL ? strlen(meta) : 0;
  char *buf, *p;

  memset(out, 0, sizeof(*out));
  out->weight = 1;
  buf = malloc(len + 1);
  if (buf == NULL)
    return MRPC_ENOMEM;
  if (len > 0)
    memcpy(buf, meta, len);
  buf[len] = '\0';
  out->ok = 1;

  /* parseQuery: pairs split on '&'; a pair holding ';' is an error, an
   * empty one is skipped; key and value split on the first '='; a pair
   * whose key or value fails to unescape is dropped and taints the whole
   * result. Get() returns a key's first value. */
  for (p = buf; p != NULL;) {
    char *pair = p, *amp = strchr(p, '&'), *val;

    if (amp != NULL)
      *amp = '\0';
    p = amp != NULL ? amp + 1 : NULL;
    if (strchr(pair, ';') != NULL) {
      out->ok = 0;
      continue;
    }
    if (*pair == '\0')
      continue;
    val = strchr(pair, '=');
    if (val != NULL)
      *val++ = '\0';
    else
      val = pair + strlen(pair); /* "" */
    if (unescape(pair) < 0 || unescape(val) < 0) {
      out->ok = 0;
      continue;
    }
    if (strcmp(pair, "state") == 0 && state == NULL)
      state = val;
    else if (strcmp(pair, "weight") == 0 && weight == NULL)
      weight = val;
    else if (strcmp(pair, "latitude") == 0 && lat == NULL)
      lat = val;
    else if (strcmp(pair, "longitude") == 0 && lon == NULL)
      lon = val;
    else if (strcmp(pair, "group") == 0 && group != NULL && *group != '\0' &&
             strcmp(val, group) == 0)
      out->in_group = 1;
  }

  if (out->ok) {
    int64_t w;

    out->inactive = state != NULL && strcmp(state, "inactive") == 0;
    /* createWeighted: "" or not an integer keeps the default 1. */
    if (weight != NULL && *weight != '\0' && parse_int(weight, &w) == 0)
      out->weight = w < 0 ? 0
                    : w > MRPC_SELECT_MAX_WEIGHT ? MRPC_SELECT_MAX_WEIGHT
                                                 : w;
    if (lat != NULL && lon != NULL && parse_coord(lat, 90, &out->lat) == 0 &&
        parse_coord(lon, 180, &out->lon) == 0)
      out->has_geo = 1;
  } else {
    out->in_group = 0;
  }
  free(buf);
  return 0;
}

static double hsin(double theta) {
  double s = sin(theta / 2);

  return s * s;
}

double mrpc__geo_distance(double lat1, double lon1, double lat2,
                          double lon2) {
  const double r = 6378100; /* rpcx's Earth radius, in metres */
  double la1 = lat1 * M_PI / 180, lo1 = lon1 * M_PI / 180;
  double la2 = lat2 * M_PI / 180, lo2 = lon2 * M_PI / 180;
  double h = hsin(la2 - la1) + cos(la1) * cos(la2) * hsin(lo2 - lo1);

  /* Rounding can push h a hair past 1 for antipodes; asin would be NaN. */
  if (h > 1)
    h = 1;
  return 2 * r * asin(sqrt(h));
}
