/* SPDX-License-Identifier: MIT */
#include "uki.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse_decimal_u32(const char *s, size_t len, uint32_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 10 || (s[0] == '0' && len > 1))
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

int kos_bk_security_version_from_cmdline(const char *cmdline, uint32_t *ret) {
        static const char key[] = KOS_BK_SECURITY_VERSION_PARAM "=";
        const char *p = cmdline;
        bool found = false;
        uint32_t v = 0;

        while (*p) {
                size_t len = strcspn(p, " \t\n");
                if (len >= sizeof key - 1 && memcmp(p, key, sizeof key - 1) == 0) {
                        if (found || parse_decimal_u32(p + sizeof key - 1, len - (sizeof key - 1), &v) < 0)
                                return -EINVAL;
                        found = true;
                } else if (len == sizeof key - 2 && memcmp(p, key, len) == 0)
                        return -EINVAL; /* the bare key, no value */
                p += len;
                p += strspn(p, " \t\n");
        }
        if (!found)
                return -ENOENT;
        *ret = v;
        return 0;
}

static int pread_exact(int fd, void *buf, size_t len, uint64_t offset, uint64_t file_size) {
        if (offset > file_size || len > file_size - offset)
                return -ENOEXEC;
        ssize_t n = pread(fd, buf, len, (off_t)offset);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* The section table: where it starts and how many entries (PE/COFF: the
 * file header follows "PE\0\0" at e_lfanew, the table follows the optional
 * header). */
static int section_table(int fd, uint64_t file_size, uint64_t *ret_offset, unsigned *ret_count) {
        uint8_t dos[64], header[24];
        int r;

        if ((r = pread_exact(fd, dos, sizeof dos, 0, file_size)) < 0)
                return r == -EIO ? -ENOEXEC : r;
        if (dos[0] != 'M' || dos[1] != 'Z')
                return -ENOEXEC;
        uint32_t pe = le32(dos + 0x3c);
        if ((r = pread_exact(fd, header, sizeof header, pe, file_size)) < 0)
                return r == -EIO ? -ENOEXEC : r;
        if (memcmp(header, "PE\0\0", 4) != 0)
                return -ENOEXEC;
        unsigned count = le16(header + 6);
        if (count == 0 || count > KOS_UKI_MAX_SECTIONS)
                return -ENOEXEC;
        *ret_offset = (uint64_t)pe + sizeof header + le16(header + 20);
        *ret_count = count;
        return 0;
}

int kos_uki_read_section(int fd, const char *name, size_t cap, char **ret_data, size_t *ret_len) {
        uint64_t table;
        unsigned count;
        struct stat st;
        char want[8] = {0};
        int r;

        if (strlen(name) > sizeof want)
                return -EINVAL;
        memcpy(want, name, strlen(name));
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((r = section_table(fd, (uint64_t)st.st_size, &table, &count)) < 0)
                return r;
        for (unsigned i = 0; i < count; i++) {
                uint8_t s[40];
                if ((r = pread_exact(fd, s, sizeof s, table + 40u * i, (uint64_t)st.st_size)) < 0)
                        return r == -EIO ? -ENOEXEC : r;
                if (memcmp(s, want, sizeof want) != 0)
                        continue;
                /* VirtualSize is the section's own length; SizeOfRawData is
                 * that rounded up to the file alignment. */
                uint32_t size = le32(s + 8) < le32(s + 16) ? le32(s + 8) : le32(s + 16);
                if (size > cap)
                        return -EFBIG;
                char *data = malloc((size_t)size + 1);
                if (!data)
                        return -ENOMEM;
                if ((r = pread_exact(fd, data, size, le32(s + 20), (uint64_t)st.st_size)) < 0) {
                        free(data);
                        return r == -EIO ? -ENOEXEC : r;
                }
                data[size] = '\0';
                *ret_data = data;
                *ret_len = size;
                return 0;
        }
        return -ENOENT;
}

int kos_uki_security_version(int fd, uint32_t *ret) {
        _cleanup_free_ char *cmdline = NULL;
        size_t len;
        int r = kos_uki_read_section(fd, ".cmdline", KOS_UKI_CMDLINE_MAX, &cmdline, &len);

        if (r < 0)
                return r;
        /* A NUL inside would hide the rest from the kernel: refuse it. */
        if (strlen(cmdline) != len)
                return -EINVAL;
        return kos_bk_security_version_from_cmdline(cmdline, ret);
}

size_t kos_bk_security_version_event(uint32_t v, char ret[static KOS_BK_SECURITY_VERSION_EVENT_MAX]) {
        int n = snprintf(ret, KOS_BK_SECURITY_VERSION_EVENT_MAX, KOS_BK_SECURITY_VERSION_EVENT_PREFIX "%" PRIu32, v);
        return n > 0 ? (size_t)n : 0;
}

int kos_bk_security_version_expected_pcr(uint32_t v, uint8_t ret_pcr[static KOS_SHA256_LEN]) {
        char event[KOS_BK_SECURITY_VERSION_EVENT_MAX];
        uint8_t buf[2 * KOS_SHA256_LEN] = {0};
        size_t len = kos_bk_security_version_event(v, event);
        int r = kos_sha256(event, len, buf + KOS_SHA256_LEN);

        return r < 0 ? r : kos_sha256(buf, sizeof buf, ret_pcr);
}

int kos_bk_measure_security_version(struct kos_tpm *t, uint32_t v) {
        char event[KOS_BK_SECURITY_VERSION_EVENT_MAX];
        size_t len = kos_bk_security_version_event(v, event);

        return kos_tpm_extend_event(t, KOS_BK_SECURITY_VERSION_PCR, event, len);
}
