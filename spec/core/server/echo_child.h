/* echo_child.h: what the server tests that measure a whole process share
 * (test_many_conns.c, test_backpressure_soak.c): an Echo.Echo server run in
 * a forked child on its own loop, and the VmRSS of a process. */
#ifndef MRPC_SPEC_ECHO_CHILD_H
#define MRPC_SPEC_ECHO_CHILD_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "moonrpc.h"

static void h_echo(mrpc_req_t *req, void *ud) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  (void)ud;
  mrpc_req_reply(req, f->payload, f->payload_len, NULL, 0);
}

/* In the child: serves Echo.Echo on 127.0.0.1 (a free port) with `o` (NULL:
 * defaults), writes its address, NUL included, to port_fd, and runs until
 * it is killed. Exits 2 when the server cannot start. */
static void echo_child_run(int port_fd, const mrpc_server_opts_t *o) {
  uv_loop_t loop;
  mrpc_server_t *s;
  char addr[320];
  uv_loop_init(&loop);
  if (mrpc_server_new(&loop, o, &s) != 0 ||
      mrpc_server_register(s, "Echo", "Echo", h_echo, NULL) != 0 ||
      mrpc_server_listen(s, "tcp", "127.0.0.1:0") != 0 ||
      mrpc_server_address(s, 0, addr, sizeof addr) != 0)
    _exit(2);
  if (write(port_fd, addr, strlen(addr) + 1) < 0) _exit(2);
  close(port_fd);
  uv_run(&loop, UV_RUN_DEFAULT);
  _exit(0);
}

/* VmRSS of process `pid` in KiB, or -1. */
static long rss_kib(pid_t pid) {
  char path[64], line[256];
  long kb = -1;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  if (!(f = fopen(path, "r"))) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

#endif
