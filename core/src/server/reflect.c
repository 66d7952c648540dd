/* reflect.c: the reflection service every moonrpc server answers,
 * "Reflection.Services": its services, each with its methods (sorted) and
 * its rpcx metadata, so that the REPL and `moonrpc list` can show and
 * complete them. Arguments none; the reply is in the caller's codec
 * (msgpack or JSON): {services: [{name, methods: [...], metadata}]}. A Go
 * rpcx server has no such service and answers "can't find service"; tools
 * then fall back to what the registry knows. */
#include <stdlib.h>
#include <string.h>
#include "server/server.h"
#include "codec/codec.h"

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The service's methods as a sorted JSON array. */
static cJSON *methods_of(const service_t *v) {
  cJSON *arr = cJSON_CreateArray();
  const method_t *m;
  const char **names;
  size_t n = 0, i;
  for (m = v->methods; m; m = m->next) n++;
  if (!arr || !(names = malloc((n ? n : 1) * sizeof *names))) return arr;
  for (n = 0, m = v->methods; m; m = m->next) names[n++] = m->name;
  qsort(names, n, sizeof *names, cmp_name);
  for (i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(names[i]));
  free(names);
  return arr;
}

static void on_services(mrpc_req_t *req, void *udata) {
  mrpc_server_t *s = udata;
  const service_t **svcs = NULL, *v;
  cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "services"), *o;
  size_t n = 0, i, len;
  char *text = NULL;
  const char *p;
  mrpc_buf_t pack = {0};
  for (v = s->services; v; v = v->next) n++;
  if (out && arr && (svcs = malloc((n ? n : 1) * sizeof *svcs))) {
    for (n = 0, v = s->services; v; v = v->next)
      if (strcmp(v->name, MRPC_REFLECTION_SERVICE) != 0) svcs[n++] = v;
    qsort(svcs, n, sizeof *svcs, cmp_name); /* name is the first field */
    for (i = 0; i < n; i++) {
      if (!(o = cJSON_CreateObject())) break;
      cJSON_AddItemToArray(arr, o);
      cJSON_AddStringToObject(o, "name", svcs[i]->name);
      cJSON_AddItemToObject(o, "methods", methods_of(svcs[i]));
      cJSON_AddStringToObject(o, "metadata", svcs[i]->meta ? svcs[i]->meta : "");
    }
  }
  if (out && arr && svcs && mrpc__json_encode(out, mrpc_req_serialize(req), &pack, &text, &p, &len) == 0)
    mrpc_req_reply(req, p, len, NULL, 0);
  else
    mrpc_req_error(req, "reflection: out of memory", NULL, 0, NULL, 0);
  cJSON_free(text);
  mrpc_buf_free(&pack);
  free(svcs);
  cJSON_Delete(out);
}

int mrpc__reflection_add(mrpc_server_t *s) {
  return mrpc_server_register(s, MRPC_REFLECTION_SERVICE, "Services", on_services, s);
}
