/* SPDX-License-Identifier: MIT */
/* The kernel command line: read once, split into key=value words. */
#include "early.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static char cmdline[8192];
static char raw_cmdline[8192]; /* as read, for early_cmdline_raw() */

/* The command line split in place into words: "key=value" becomes key and
 * value strings that stay valid for the life of the process. */
static struct {
        const char *key, *value;
} words[256];
static size_t n_words;

static void split_cmdline(char *p) {
        while (*p && n_words < ELEMENTSOF(words)) {
                while (*p == ' ' || *p == '\n')
                        p++;
                if (!*p)
                        break;
                char *start = p, *eq = NULL;
                bool quoted = false;
                for (; *p && (quoted || (*p != ' ' && *p != '\n')); p++) {
                        if (*p == '"')
                                quoted = !quoted;
                        else if (*p == '=' && !eq)
                                eq = p;
                }
                if (*p)
                        *p++ = '\0';
                if (eq)
                        *eq = '\0';
                words[n_words].key = start;
                words[n_words++].value = eq ? eq + 1 : "";
        }
}

int early_cmdline_load(void) {
        _cleanup_close_ int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, cmdline, sizeof cmdline - 1);
        if (n < 0)
                return -errno;
        cmdline[n] = '\0';
        memcpy(raw_cmdline, cmdline, (size_t)n + 1);
        n_words = 0;
        split_cmdline(cmdline);
        return 0;
}

void early_cmdline_set(const char *text) {
        snprintf(cmdline, sizeof cmdline, "%s", text);
        snprintf(raw_cmdline, sizeof raw_cmdline, "%s", text);
        n_words = 0;
        split_cmdline(cmdline);
}

unsigned early_cmdline_seconds(const char *key, unsigned fallback) {
        const char *v = early_cmdline_get(key);
        char *end;

        if (!v || !*v)
                return fallback;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || !isdigit((unsigned char)v[0]) || n > 3600) {
                early_log("ignoring %s=%s: not a number of seconds up to 3600", key, v);
                return fallback;
        }
        return (unsigned)n;
}

const char *early_cmdline_get(const char *key) {
        const char *found = NULL;

        for (size_t i = 0; i < n_words; i++)
                if (strcmp(words[i].key, key) == 0)
                        found = words[i].value; /* the last one wins, as in the kernel */
        return found;
}

const char *early_cmdline_raw(void) {
        return raw_cmdline;
}
