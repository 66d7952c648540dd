/* pty_drive.c: runs a command on a pseudo-terminal and drives it with a
 * script of expect/send steps, for specs of interactive programs (the
 * REPL). Not a test itself: spec/repl_spec.lua runs it.
 *
 *   pty_drive SCRIPT COMMAND [ARGS...]
 *
 * SCRIPT has one step a line (blank lines and lines starting with # are
 * skipped); TEXT takes the escapes \n \r \t \e \\ \xHH:
 *   timeout SECONDS   the time each later expect or exit may take (default 5)
 *   expect TEXT       waits until TEXT appears in the output after the end
 *                     of the previous match (ANSI escape sequences and
 *                     carriage returns are left out before matching)
 *   send TEXT         writes TEXT to the terminal
 *   sleep MS          waits, reading output meanwhile
 *   exit CODE         waits for the command to end with exit status CODE
 * Exits 0 when every step passed; otherwise 1, naming the failed step and
 * printing what the command wrote. The whole output goes to stdout. */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char raw[1 << 20], clean[1 << 20];
static size_t nraw, nclean, matched; /* matched: clean bytes already consumed */
static int esc_state;                /* 0 text, 1 after ESC, 2 in a CSI sequence */
static int master = -1, child_done, child_status;
static pid_t child;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void keep(char c) {
  if (esc_state == 1) {
    esc_state = c == '[' ? 2 : 0;
    return;
  }
  if (esc_state == 2) {
    if (c >= 0x40 && c <= 0x7e) esc_state = 0;
    return;
  }
  if (c == '\033') {
    esc_state = 1;
    return;
  }
  if (c == '\r' || nclean >= sizeof clean - 1) return;
  clean[nclean++] = c;
  clean[nclean] = '\0';
}

/* Reads what the command wrote, for at most `wait` seconds. Returns 0 once
 * the terminal is closed (the command ended), else 1. */
static int pump(double wait) {
  struct pollfd p = {master, POLLIN, 0};
  char buf[4096];
  ssize_t n, i;
  int ms = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
  if (master < 0) return 0;
  if (poll(&p, 1, ms) <= 0) return 1;
  n = read(master, buf, sizeof buf);
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return 1;
    close(master);
    master = -1;
    return 0;
  }
  fwrite(buf, 1, (size_t)n, stdout);
  fflush(stdout);
  for (i = 0; i < n; i++) {
    if (nraw < sizeof raw) raw[nraw++] = buf[i];
    keep(buf[i]);
  }
  return 1;
}

static size_t unescape(const char *s, char *out) {
  size_t n = 0;
  while (*s) {
    if (*s == '\\' && s[1]) {
      s++;
      switch (*s) {
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'e': out[n++] = '\033'; break;
      case 'x': {
        char hex[3] = {s[1], s[1] ? s[2] : 0, 0};
        out[n++] = (char)strtol(hex, NULL, 16);
        s += 2;
        break;
      }
      default: out[n++] = *s;
      }
      s++;
    } else {
      out[n++] = *s++;
    }
  }
  out[n] = '\0';
  return n;
}

static void reap(void) {
  if (!child_done && waitpid(child, &child_status, WNOHANG) == child) child_done = 1;
}

static int fail(int lineno, const char *step) {
  fflush(stdout);
  fprintf(stderr, "\npty_drive: step %d failed: %s\npty_drive: output so far "
          "(escapes removed, after the last match):\n%s\n",
          lineno, step, clean + matched);
  if (!child_done) kill(child, SIGKILL);
  return 1;
}

int main(int argc, char **argv) {
  FILE *script;
  char line[4096], text[4096];
  double timeout = 5;
  int lineno = 0;
  struct winsize ws = {24, 100, 0, 0};
  if (argc < 3) {
    fprintf(stderr, "usage: pty_drive SCRIPT COMMAND [ARGS...]\n");
    return 2;
  }
  if (!(script = fopen(argv[1], "r"))) {
    perror(argv[1]);
    return 2;
  }
  child = forkpty(&master, NULL, NULL, &ws);
  if (child < 0) {
    perror("forkpty");
    return 2;
  }
  if (child == 0) {
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    _exit(127);
  }
  while (fgets(line, sizeof line, script)) {
    char *arg;
    size_t len = strlen(line);
    lineno++;
    if (len && line[len - 1] == '\n') line[--len] = '\0';
    if (len == 0 || line[0] == '#') continue;
    arg = strchr(line, ' ');
    arg = arg ? arg + 1 : line + len;
    if (strncmp(line, "timeout ", 8) == 0) {
      timeout = atof(arg);
    } else if (strncmp(line, "send ", 5) == 0) {
      size_t n = unescape(arg, text), off = 0;
      while (off < n) {
        ssize_t w = write(master, text + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return fail(lineno, line);
        off += (size_t)w;
      }
    } else if (strncmp(line, "sleep ", 6) == 0) {
      double end = now() + atof(arg) / 1000;
      while (now() < end && pump(end - now())) {}
    } else if (strncmp(line, "expect ", 7) == 0) {
      double end = now() + timeout;
      char *hit;
      unescape(arg, text);
      while (!(hit = strstr(clean + matched, text))) {
        if (now() >= end || !pump(end - now())) {
          if ((hit = strstr(clean + matched, text))) break;
          return fail(lineno, line);
        }
      }
      matched = (size_t)(hit - clean) + strlen(text);
    } else if (strncmp(line, "exit ", 5) == 0) {
      double end = now() + timeout;
      while (pump(0.05), reap(), !child_done && now() < end) {}
      if (!child_done) return fail(lineno, "exit: the command is still running");
      if (!WIFEXITED(child_status) || WEXITSTATUS(child_status) != atoi(arg)) {
        snprintf(text, sizeof text, "%s (it ended with %s %d)", line,
                 WIFEXITED(child_status) ? "status" : "signal",
                 WIFEXITED(child_status) ? WEXITSTATUS(child_status) : WTERMSIG(child_status));
        return fail(lineno, text);
      }
    } else {
      return fail(lineno, "unknown step");
    }
  }
  reap();
  if (!child_done) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  return 0;
}
