/* SPDX-License-Identifier: MIT */
/* The Boot Kernel UKI a release carries: the manifest's "boot_kernel", the
 * security version on a UKI's command line, and reading it out of a PE file
 * (docs/format.md, "Boot Kernel UKI"; docs/trust-chain.md). */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest.h"
#include "test.h"
#include "uki.h"

#define H64 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
#define BASE                                                                                            \
        "{\"format\": 1, \"name\": \"demo\", \"version\": 3, \"kernel\": {\"sha256\": " H64              \
        ", \"size\": 10}, \"initrd\": {\"sha256\": " H64 ", \"size\": 20}, \"cmdline\": \"quiet\", "       \
        "\"components\": [{\"name\": \"base\", \"type\": \"squashfs\", \"sha256\": " H64 ", \"size\": 30}]"
#define BK(body) BASE ", \"boot_kernel\": " body "}"
#define BK_VALID BK("{\"sha256\": \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\", \"size\": 50, \"bk_security_version\": 7}")

static int parse(const char *text, struct kos_manifest **ret) {
        struct kos_error err = KOS_ERROR_NULL;
        return kos_manifest_parse(text, strlen(text), ret, &err);
}

static int parse_only(const char *text) {
        struct kos_manifest *m = NULL;
        int r = parse(text, &m);
        kos_manifest_free(m);
        return r;
}

TEST(manifest_boot_kernel_is_optional_and_parsed_with_its_security_version) {
        struct kos_manifest *plain = NULL, *m = NULL;
        CHECK(parse(BASE "}", &plain) == 0);
        bool absent = !plain->boot_kernel.present;
        kos_manifest_free(plain);
        CHECK(absent);
        CHECK(parse(BK_VALID, &m) == 0);
        bool ok = m->boot_kernel.present && m->boot_kernel.blob.size == 50 && m->boot_kernel.blob.sha256[0] == 0xbb &&
                  m->boot_kernel.security_version == 7;
        kos_manifest_free(m);
        CHECK(ok);
}

TEST(manifest_boot_kernel_rejects_unknown_keys_missing_fields_and_bad_values) {
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"size\": 50}")) == -EBADMSG);
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"bk_security_version\": 1}")) == -EBADMSG);
        CHECK(parse_only(BK("{\"size\": 50, \"bk_security_version\": 1}")) == -EBADMSG);
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"size\": 50, \"bk_security_version\": 1, \"role\": \"x\"}")) == -EBADMSG);
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"size\": 50, \"bk_security_version\": 4294967296}")) == -EBADMSG);
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"size\": 50, \"bk_security_version\": -1}")) == -EBADMSG);
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"size\": 50, \"bk_security_version\": \"1\"}")) == -EBADMSG);
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"size\": 0, \"bk_security_version\": 1}")) == -EBADMSG);
        CHECK(parse_only(BK("[]")) == -EBADMSG);
        CHECK(parse_only(BK("{\"sha256\": " H64 ", \"size\": 50, \"bk_security_version\": 4294967295}")) == 0);
}

/* The UKI travels with the release (bundles, OCI, gc keep it), listed last
 * so the kernel, initrd and components keep their positions. */
TEST(manifest_blobs_list_the_boot_kernel_last) {
        struct kos_manifest *m = NULL;
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        CHECK(parse(BK_VALID, &m) == 0);
        size_t n = kos_manifest_blobs(m, blobs, labels, KOS_MANIFEST_MAX_BLOBS);
        bool ok = n == 4 && strcmp(labels[2], "base") == 0 && strcmp(labels[3], "boot-kernel") == 0 &&
                  blobs[3] == &m->boot_kernel.blob;
        kos_manifest_free(m);
        CHECK(ok);
}

TEST(manifest_format_writes_boot_kernel_last_and_only_when_present) {
        struct kos_manifest *m = NULL, *again = NULL;
        char *with = NULL, *without = NULL;
        size_t len;
        CHECK(parse(BK_VALID, &m) == 0);
        int r = kos_manifest_format(m, &with, &len);
        if (r == 0)
                r = parse(with, &again);
        m->boot_kernel.present = false;
        if (r == 0)
                r = kos_manifest_format(m, &without, &len);
        bool ok = r == 0 && strstr(with, "  ],\n  \"boot_kernel\": {\n") && strstr(with, "\"bk_security_version\": 7\n  }\n}\n") &&
                  again->boot_kernel.present && again->boot_kernel.security_version == 7 &&
                  memcmp(&again->boot_kernel.blob, &m->boot_kernel.blob, sizeof m->boot_kernel.blob) == 0 &&
                  !strstr(without, "boot_kernel");
        free(with);
        free(without);
        kos_manifest_free(m);
        kos_manifest_free(again);
        CHECK(ok);
}

/* The dbx update a release carries (docs/format.md, "dbx update"). */
#define H64C "\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\""
#define DBX(body) BASE ", \"dbx_update\": " body "}"

TEST(manifest_dbx_update_is_optional_and_capped_at_one_mib) {
        struct kos_manifest *m = NULL;
        CHECK(parse(DBX("{\"sha256\": " H64C ", \"size\": 3000}"), &m) == 0);
        bool ok = m->dbx_update.present && m->dbx_update.blob.size == 3000 && m->dbx_update.blob.sha256[0] == 0xcc;
        kos_manifest_free(m);
        CHECK(ok);
        CHECK(parse_only(DBX("{\"sha256\": " H64C ", \"size\": 1048576}")) == 0);
        CHECK(parse_only(DBX("{\"sha256\": " H64C ", \"size\": 1048577}")) == -EBADMSG);
        CHECK(parse_only(DBX("{\"sha256\": " H64C ", \"size\": 0}")) == -EBADMSG);
        CHECK(parse_only(DBX("{\"sha256\": " H64C "}")) == -EBADMSG);
        CHECK(parse_only(DBX("{\"sha256\": " H64C ", \"size\": 30, \"role\": \"dbx\"}")) == -EBADMSG);
        CHECK(parse_only(DBX("[]")) == -EBADMSG);
}

/* It travels with the release (bundles, OCI, gc), after the Boot Kernel
 * UKI; selection does not hash it (select.c leaves both out of its jobs). */
TEST(manifest_blobs_list_the_dbx_update_after_the_boot_kernel) {
        static const char text[] = BASE ", \"boot_kernel\": {\"sha256\": " H64 ", \"size\": 50, \"bk_security_version\": 7}"
                                   ", \"dbx_update\": {\"sha256\": " H64C ", \"size\": 3000}}";
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        struct kos_manifest *m = NULL, *again = NULL;
        char *json = NULL;
        size_t len;
        CHECK(parse(text, &m) == 0);
        size_t n = kos_manifest_blobs(m, blobs, labels, KOS_MANIFEST_MAX_BLOBS);
        int r = kos_manifest_format(m, &json, &len);
        if (r == 0)
                r = parse(json, &again);
        bool ok = n == 5 && strcmp(labels[3], "boot-kernel") == 0 && strcmp(labels[4], "dbx-update") == 0 &&
                  blobs[4] == &m->dbx_update.blob && r == 0 && strstr(json, "  },\n  \"dbx_update\": {\n") &&
                  again->dbx_update.present && again->dbx_update.blob.size == 3000;
        free(json);
        kos_manifest_free(m);
        kos_manifest_free(again);
        CHECK(ok);
}

TEST(bk_security_version_is_read_from_the_command_line_strictly) {
        uint32_t v = 99;
        CHECK(kos_bk_security_version_from_cmdline("console=ttyS0 kos.bk_security_version=3", &v) == 0 && v == 3);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=0 quiet", &v) == 0 && v == 0);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=4294967295\n", &v) == 0 && v == UINT32_MAX);
        CHECK(kos_bk_security_version_from_cmdline("console=ttyS0 panic=-1", &v) == -ENOENT);
        CHECK(kos_bk_security_version_from_cmdline("", &v) == -ENOENT);
        CHECK(kos_bk_security_version_from_cmdline("xkos.bk_security_version=3", &v) == -ENOENT);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=4294967296", &v) == -EINVAL);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=-1", &v) == -EINVAL);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=+1", &v) == -EINVAL);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=01", &v) == -EINVAL);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=1x", &v) == -EINVAL);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=", &v) == -EINVAL);
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version", &v) == -EINVAL);
        /* Twice: the kernel keeps the last, a reader might take the first. */
        CHECK(kos_bk_security_version_from_cmdline("kos.bk_security_version=1 kos.bk_security_version=1", &v) == -EINVAL);
}

/* A minimal PE32+ image: DOS header, "PE\0\0", file header, a 240-byte
 * optional header, then the section table with one .cmdline section. */
static int write_pe(const char *path, const char *cmdline, uint32_t pointer_override) {
        uint8_t buf[1024] = {'M', 'Z'};
        const uint32_t pe = 0x80, table = pe + 24 + 240, data = 0x200;
        uint32_t size = (uint32_t)strlen(cmdline);
        buf[0x3c] = pe;
        memcpy(buf + pe, "PE\0\0", 4);
        buf[pe + 4] = 0x64, buf[pe + 5] = 0x86; /* x86-64 */
        buf[pe + 6] = 1;                        /* NumberOfSections */
        buf[pe + 20] = 240;                     /* SizeOfOptionalHeader */
        memcpy(buf + table, ".cmdline", 8);
        memcpy(buf + table + 8, &size, 4);      /* VirtualSize */
        uint32_t raw = (size + 511) & ~511u, pointer = pointer_override ? pointer_override : data;
        memcpy(buf + table + 16, &raw, 4);      /* SizeOfRawData */
        memcpy(buf + table + 20, &pointer, 4);  /* PointerToRawData */
        memcpy(buf + data, cmdline, size);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, buf, data + raw);
        close(fd);
        return n == (ssize_t)(data + raw) ? 0 : -EIO;
}

static int version_of_file(const char *path, uint32_t *ret) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = kos_uki_security_version(fd, ret);
        close(fd);
        return r;
}

TEST(uki_security_version_is_read_from_the_cmdline_section) {
        char path[4096];
        uint32_t v = 0;
        snprintf(path, sizeof path, "%s/uki.efi", test_tmpdir());
        CHECK(write_pe(path, "console=ttyS0 kos.bk_security_version=12", 0) == 0);
        CHECK(version_of_file(path, &v) == 0 && v == 12);
        CHECK(write_pe(path, "console=ttyS0", 0) == 0);
        CHECK(version_of_file(path, &v) == -ENOENT);
}

TEST(uki_section_reader_rejects_offsets_outside_the_file_and_non_pe) {
        char path[4096];
        uint32_t v = 0;
        snprintf(path, sizeof path, "%s/uki.efi", test_tmpdir());
        CHECK(write_pe(path, "kos.bk_security_version=1", 0x7fffff00u) == 0);
        CHECK(version_of_file(path, &v) == -ENOEXEC);
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        CHECK(fd >= 0);
        ssize_t n = write(fd, "not a PE file at all, but long enough to have a header to look at.", 66);
        close(fd);
        CHECK(n == 66);
        CHECK(version_of_file(path, &v) == -ENOEXEC);
}

/* The agreed PCR 14 event (docs/tpm.md): golden values computed with
 * Python's hashlib: sha256(b"kos-bk-security-version=3") and
 * sha256(b"\0" * 32 + that). */
TEST(bk_security_version_pcr14_event_and_expected_value_match_golden_values) {
        char event[KOS_BK_SECURITY_VERSION_EVENT_MAX], hex[KOS_SHA256_HEX_LEN + 1];
        uint8_t digest[KOS_SHA256_LEN];
        CHECK(kos_bk_security_version_event(3, event) == 25 && strcmp(event, "kos-bk-security-version=3") == 0);
        CHECK(kos_sha256(event, 25, digest) == 0);
        kos_hex_encode(digest, KOS_SHA256_LEN, hex);
        CHECK(strcmp(hex, "3effa844d2f16044085a5f6f14029a62ddfb1f730157f44f0befb99aee2ba3f9") == 0);
        CHECK(kos_bk_security_version_expected_pcr(3, digest) == 0);
        kos_hex_encode(digest, KOS_SHA256_LEN, hex);
        CHECK(strcmp(hex, "e6e7213a4d6afc1b5edb7967962f0c9141046c5495c501c7a197453975bb607b") == 0);
        CHECK(kos_bk_security_version_event(UINT32_MAX, event) == 34 && strcmp(event, "kos-bk-security-version=4294967295") == 0);
}
