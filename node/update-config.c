/* SPDX-License-Identifier: MIT */
#include "update-config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char *trim(char *s) {
        while (*s == ' ' || *s == '\t')
                s++;
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                s[--n] = '\0';
        return s;
}

static int parse_seconds(const char *s, uint32_t min, uint32_t max, uint32_t *ret) {
        char *end;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

/* Values are printable ASCII without spaces: references and paths. */
static bool value_valid(const char *v) {
        if (!*v || strlen(v) >= UPDATE_VALUE_MAX)
                return false;
        for (const char *p = v; *p; p++)
                if (*p <= ' ' || *p >= 0x7f)
                        return false;
        return true;
}

static int set_line(struct update_config *c, unsigned *seen, unsigned line, const char *key, const char *value,
                    struct kos_error *ret_error) {
        static const char *const keys[] = {"registry", "interval", "jitter", "credentials-file", "ca-file"};
        unsigned k = 0;

        while (k < 5 && strcmp(key, keys[k]) != 0)
                k++;
        if (k == 5)
                return kos_error_set(ret_error, -EINVAL, "line %u: unknown key \"%.40s\"", line, key);
        if (*seen & (1u << k))
                return kos_error_set(ret_error, -EINVAL, "line %u: %s given twice", line, key);
        *seen |= 1u << k;
        if (!value_valid(value))
                return kos_error_set(ret_error, -EINVAL, "line %u: %s needs a value without spaces or control characters", line, key);
        switch (k) {
        case 0:
                snprintf(c->registry, sizeof c->registry, "%s", value);
                return 0;
        case 1:
                return parse_seconds(value, 60, 604800, &c->interval) < 0
                               ? kos_error_set(ret_error, -EINVAL, "line %u: interval takes 60 to 604800 seconds", line)
                               : 0;
        case 2:
                return parse_seconds(value, 0, 604800, &c->jitter) < 0 ? kos_error_set(ret_error, -EINVAL, "line %u: jitter takes 0 to 604800 seconds", line)
                                                                       : 0;
        default:
                if (value[0] != '/')
                        return kos_error_set(ret_error, -EINVAL, "line %u: %s must be an absolute path", line, key);
                snprintf(k == 3 ? c->credentials_file : c->ca_file, UPDATE_VALUE_MAX, "%s", value);
                return 0;
        }
}

int update_config_parse(const char *text, size_t len, struct update_config *ret, struct kos_error *ret_error) {
        unsigned seen = 0, line = 0;
        int r = 0;

        *ret = (struct update_config){.interval = 3600};
        if (len > UPDATE_CONFIG_MAX || strlen(text) != len)
                return kos_error_set(ret_error, -EINVAL, "larger than %d bytes, or holds a NUL byte", UPDATE_CONFIG_MAX);
        char *copy = strdup(text), *save = NULL;
        if (!copy)
                return -ENOMEM;
        /* strtok_r would merge empty lines and miscount; walk by hand. */
        for (char *p = copy; p && r >= 0; p = save) {
                char *nl = strchr(p, '\n');
                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = '\0';
                line++;
                char *s = trim(p);
                if (!*s || *s == '#')
                        continue;
                char *eq = strchr(s, '=');
                if (!eq) {
                        r = kos_error_set(ret_error, -EINVAL, "line %u: expected key = value", line);
                        break;
                }
                *eq = '\0';
                r = set_line(ret, &seen, line, trim(s), trim(eq + 1), ret_error);
        }
        free(copy);
        if (r < 0)
                return r;
        if (!(seen & 1))
                return kos_error_set(ret_error, -EINVAL, "no registry = REFERENCE");
        if (!(seen & 4))
                ret->jitter = ret->interval / 10;
        return 0;
}
