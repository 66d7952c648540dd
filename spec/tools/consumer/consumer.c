/* consumer.c: a host program that links libmoonrpc from an install: it
 * starts a server on its own loop, calls it with a client, and prints the
 * reply, so the link is checked by running, not only by resolving. */
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "moonrpc.h"

static mrpc_server_t *srv;
static mrpc_client_t *cli;
static int status = 1;

static void echo(mrpc_req_t *req, void *udata) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  mrpc_req_reply(req, f->payload, f->payload_len, NULL, 0);
}

static void on_reply(int st, const mrpc_frame_t *f, void *udata) {
  if (st == 0 && f->payload_len == 5 && memcmp(f->payload, "hello", 5) == 0) {
    printf("reply: %.*s\n", (int)f->payload_len, f->payload);
    status = 0;
  } else {
    fprintf(stderr, "call failed: %s\n", st ? mrpc_strerror(st) : "wrong payload");
  }
  mrpc_client_close(cli, NULL, NULL);
  mrpc_server_close(srv, NULL, NULL);
}

int main(void) {
  uv_loop_t loop;
  char addr[128];
  mrpc_call_args_t a;
  uv_loop_init(&loop);
  if (mrpc_server_new(&loop, NULL, &srv) || mrpc_server_register(srv, "Echo", "Echo", echo, NULL) ||
      mrpc_server_listen(srv, "tcp", "127.0.0.1:0") || mrpc_server_address(srv, 0, addr, sizeof addr) ||
      mrpc_client_new(&loop, addr, NULL, &cli))
    return 2;
  memset(&a, 0, sizeof a);
  a.service = "Echo";
  a.method = "Echo";
  a.serialize = MRPC_SERIALIZE_NONE;
  a.payload = "hello";
  a.payload_len = 5;
  a.timeout_ms = 3000;
  if (mrpc_client_call(cli, &a, on_reply, NULL, NULL) < 0) return 2;
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return status;
}
