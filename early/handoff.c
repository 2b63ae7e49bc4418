/* SPDX-License-Identifier: MIT */
/* The Boot Kernel's handoff to the System Kernel (format in early.h and
 * docs/boot-kernel.md). Independent of the core library: the System Kernel
 * parses it before it has checked anything. */
#include "early.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MANIFEST_KEY "kos.manifest="
#define UUID_KEY " kos.imagefs=UUID="
#define PARTUUID_KEY " kos.imagefs_partuuid="
#define TPM_MARKER_KEY " kos.tpm_marker="

static bool is_id(const char *s, size_t len) {
        if (len != 64)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* A filesystem or partition UUID as libblkid prints it: no space, no '|',
 * nothing the kernel's command line parser would read differently. */
static bool is_uuid(const char *s, size_t len) {
        if (len == 0 || len > 63)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      s[i] == '-'))
                        return false;
        return true;
}

static bool handoff_is_valid(const struct early_handoff *h) {
        return is_id(h->manifest_id, strlen(h->manifest_id)) && is_uuid(h->imagefs_uuid, strlen(h->imagefs_uuid)) &&
               is_uuid(h->imagefs_partuuid, strlen(h->imagefs_partuuid));
}

int early_handoff_format(const char *signed_cmdline, const struct early_handoff *handoff, char *out, size_t size) {
        if (!handoff_is_valid(handoff))
                return -EINVAL;
        int n = snprintf(out, size, "%s%s" MANIFEST_KEY "%s" UUID_KEY "%s" PARTUUID_KEY "%s" TPM_MARKER_KEY "%c",
                         signed_cmdline, signed_cmdline[0] ? " " : "", handoff->manifest_id, handoff->imagefs_uuid,
                         handoff->imagefs_partuuid, handoff->tpm_marker ? '1' : '0');
        return n < 0 || (size_t)n >= size ? -E2BIG : 0;
}

/* Copies the value that follows key at *p up to the next space or the end. */
static bool take_value(const char **p, const char *key, char *out, size_t size) {
        size_t key_len = strlen(key);

        if (strncmp(*p, key, key_len) != 0)
                return false;
        *p += key_len;
        size_t len = strcspn(*p, " \n");
        if (len >= size)
                return false;
        memcpy(out, *p, len);
        out[len] = '\0';
        *p += len;
        return true;
}

int early_handoff_parse(const char *cmdline, struct early_handoff *ret) {
        size_t len = strlen(cmdline);
        const char *p = NULL;

        if (len > 0 && cmdline[len - 1] == '\n')
                len--;
        /* The last kos.manifest= that starts a word. */
        for (const char *q = cmdline; (q = strstr(q, MANIFEST_KEY)) && (size_t)(q - cmdline) < len; q++)
                if (q == cmdline || q[-1] == ' ')
                        p = q;
        if (!p)
                return -EBADMSG;
        memset(ret, 0, sizeof *ret);
        char marker[2];
        if (!take_value(&p, MANIFEST_KEY, ret->manifest_id, sizeof ret->manifest_id) ||
            !take_value(&p, UUID_KEY, ret->imagefs_uuid, sizeof ret->imagefs_uuid) ||
            !take_value(&p, PARTUUID_KEY, ret->imagefs_partuuid, sizeof ret->imagefs_partuuid) ||
            !take_value(&p, TPM_MARKER_KEY, marker, sizeof marker) || (marker[0] != '0' && marker[0] != '1'))
                return -EBADMSG;
        ret->tpm_marker = marker[0] == '1';
        /* Only the trailing newline may follow. */
        if ((size_t)(p - cmdline) != len)
                return -EBADMSG;
        if (!handoff_is_valid(ret))
                return -EBADMSG;
        return 0;
}
