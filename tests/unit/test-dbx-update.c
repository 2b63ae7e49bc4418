/* SPDX-License-Identifier: MIT */
/* The dbx update a release carries (the manifest's "dbx_update",
 * docs/format.md) and the device's "already in dbx" test before it writes
 * one (lib/device/dbx.h; docs/trust-chain.md, "dbx updates"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbx.h"
#include "manifest.h"
#include "test.h"

#define H64 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
#define BASE                                                                                            \
        "{\"format\": 1, \"name\": \"demo\", \"version\": 3, \"kernel\": {\"sha256\": " H64              \
        ", \"size\": 10}, \"initrd\": {\"sha256\": " H64 ", \"size\": 20}, \"cmdline\": \"quiet\", "       \
        "\"components\": [{\"name\": \"base\", \"type\": \"squashfs\", \"sha256\": " H64 ", \"size\": 30}]"
#define H64C "\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\""
#define BK ", \"boot_kernel\": {\"sha256\": " H64 ", \"size\": 50, \"bk_security_version\": 7}"
#define DBX(body) BASE ", \"dbx_update\": " body "}"
#define DBX_VALID DBX("{\"sha256\": " H64C ", \"size\": 3000}")

static int parse(const char *text, struct kos_manifest **ret) {
        char err[256];
        return kos_manifest_parse(text, strlen(text), ret, err, sizeof err);
}

static int parse_only(const char *text) {
        struct kos_manifest *m = NULL;
        int r = parse(text, &m);
        kos_manifest_free(m);
        return r;
}

TEST(manifest_dbx_update_is_optional_and_capped_at_one_mib) {
        struct kos_manifest *m = NULL;
        CHECK(parse(DBX_VALID, &m) == 0);
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
 * UKI; selection does not hash it (select.c drops both from its jobs). */
TEST(manifest_blobs_list_the_dbx_update_after_the_boot_kernel) {
        static const char text[] = BASE BK ", \"dbx_update\": {\"sha256\": " H64C ", \"size\": 3000}}";
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
                  blobs[4] == &m->dbx_update.blob && r == 0 && strstr(json, "\"dbx_update\": {\n") &&
                  again->dbx_update.present && again->dbx_update.blob.size == 3000;
        free(json);
        kos_manifest_free(m);
        kos_manifest_free(again);
        CHECK(ok);
}

/* An EFI_SIGNATURE_LIST of EFI_CERT_SHA256 entries, each 0xNN repeated. */
static size_t sha256_list(uint8_t *out, const uint8_t *fills, size_t n) {
        static const uint8_t type[16] = {0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40,
                                         0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28};
        uint32_t entry = 16 + 32, size = (uint32_t)(28 + n * entry), zero = 0;
        memcpy(out, type, 16);
        memcpy(out + 16, &size, 4);
        memcpy(out + 20, &zero, 4);
        memcpy(out + 24, &entry, 4);
        for (size_t i = 0; i < n; i++) {
                memset(out + 28 + i * entry, 0x11, 16); /* owner */
                memset(out + 28 + i * entry + 16, fills[i], 32);
        }
        return size;
}

TEST(dbx_holds_an_update_only_when_it_holds_every_entry_whatever_the_owner) {
        uint8_t dbx[512], update[256];
        size_t dbx_len = sha256_list(dbx, (const uint8_t[]){1, 2, 3}, 3);
        dbx_len += sha256_list(dbx + dbx_len, (const uint8_t[]){4}, 1);
        size_t len = sha256_list(update, (const uint8_t[]){4, 2}, 2);
        update[28] = 0x22; /* another owner: the same entry for the firmware */
        CHECK(kos_dbx_lists_contain(dbx, dbx_len, update, len));
        len = sha256_list(update, (const uint8_t[]){2, 5}, 2);
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, 0, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len, update, 0));
        /* A truncated dbx or update is never "already applied". */
        len = sha256_list(update, (const uint8_t[]){1}, 1);
        CHECK(kos_dbx_lists_contain(dbx, dbx_len, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len - 1, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len, update, len - 1));
}
