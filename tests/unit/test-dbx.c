/* SPDX-License-Identifier: MIT */
/* The device-side check of a dbx update (lib/device/dbx.h): one test per
 * rule, on signature lists built here byte by byte (UEFI 2.10, 32.4.1). */
#include <string.h>

#include "dbx.h"
#include "test.h"

static const uint8_t sha256_type[16] = {0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40,
                                        0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28};
static const uint8_t x509_type[16] = {0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a,
                                      0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72};
static const uint8_t pkcs7_type[16] = {0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49,
                                       0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7};

static void put32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends one EFI_SIGNATURE_LIST of type with n entries of data_len bytes
 * (entries[i] each); returns the new length. */
static size_t add_list(uint8_t *buf, size_t pos, const uint8_t type[16], size_t n, const uint8_t *const *entries,
                       size_t data_len) {
        uint32_t entry_size = (uint32_t)(16 + data_len);
        memcpy(buf + pos, type, 16);
        put32(buf + pos + 16, (uint32_t)(28 + n * entry_size));
        put32(buf + pos + 20, 0);
        put32(buf + pos + 24, entry_size);
        pos += 28;
        for (size_t i = 0; i < n; i++) {
                memset(buf + pos, 0x4b, 16); /* owner */
                memcpy(buf + pos + 16, entries[i], data_len);
                pos += entry_size;
        }
        return pos;
}

/* A UKI identity: hash 0x11..., one certificate "CERT-A-DER-BYTES". */
static uint8_t cert_a[] = "CERT-A-DER-BYTES";
static void identity(struct kos_uki_identity *id) {
        memset(id, 0, sizeof *id);
        memset(id->authenticode_sha256, 0x11, KOS_SHA256_LEN);
        id->n_certs = 1;
        id->certs[0] = cert_a;
        id->cert_lens[0] = sizeof cert_a;
}

static enum kos_dbx_verdict check(const uint8_t *lists, size_t len, struct kos_error *detail) {
        struct kos_uki_identity id;
        identity(&id);
        return kos_dbx_check_signature_lists(lists, len, &id, 1, detail);
}

TEST(dbx_update_revoking_the_needed_uki_hash_is_refused) {
        uint8_t buf[512], other[32], mine[32];
        struct kos_error detail;
        memset(other, 0x22, 32);
        memset(mine, 0x11, 32);
        const uint8_t *entries[] = {other, mine};
        size_t len = add_list(buf, 0, sha256_type, 2, entries, 32);
        CHECK(check(buf, len, &detail) == KOS_DBX_REVOKES_UKI_HASH);
        CHECK(strstr(detail.msg, "list 0 entry 1 is the Authenticode hash 1111") != NULL);
        CHECK(detail.code == -EPERM);
}

TEST(dbx_update_revoking_the_needed_uki_signer_certificate_is_refused) {
        uint8_t buf[512], other[32];
        struct kos_error detail;
        memset(other, 0x22, 32);
        const uint8_t *hashes[] = {other}, *certs[] = {cert_a};
        size_t len = add_list(buf, 0, sha256_type, 1, hashes, 32);
        len = add_list(buf, len, x509_type, 1, certs, sizeof cert_a);
        CHECK(check(buf, len, &detail) == KOS_DBX_REVOKES_UKI_SIGNER);
        CHECK(strstr(detail.msg, "list 1 entry 0 is certificate 0") != NULL);
}

TEST(dbx_update_revoking_only_other_ukis_and_certificates_is_safe) {
        uint8_t buf[512], other[32], cert_b[sizeof cert_a];
        struct kos_error detail;
        memset(other, 0x22, 32);
        memcpy(cert_b, cert_a, sizeof cert_a);
        cert_b[0] ^= 1;
        const uint8_t *hashes[] = {other}, *certs[] = {cert_b};
        size_t len = add_list(buf, 0, sha256_type, 1, hashes, 32);
        len = add_list(buf, len, x509_type, 1, certs, sizeof cert_b);
        CHECK(check(buf, len, &detail) == KOS_DBX_SAFE);
        CHECK(detail.code == 0 && strstr(detail.msg, "nothing a needed UKI is matched by") != NULL);
        /* A prefix of the certificate is not the certificate. */
        const uint8_t *prefix[] = {cert_a};
        len = add_list(buf, 0, x509_type, 1, prefix, sizeof cert_a - 1);
        CHECK(check(buf, len, &detail) == KOS_DBX_SAFE);
}

TEST(dbx_update_with_an_entry_type_it_cannot_compare_is_refused) {
        uint8_t buf[512], type[16], data[32] = {0};
        struct kos_error detail;
        memcpy(type, sha256_type, 16);
        type[0] ^= 1; /* e.g. EFI_CERT_X509_SHA256 */
        const uint8_t *entries[] = {data};
        size_t len = add_list(buf, 0, type, 1, entries, 32);
        CHECK(check(buf, len, &detail) == KOS_DBX_UNKNOWN_TYPE);
}

TEST(dbx_update_whose_list_sizes_do_not_add_up_is_malformed) {
        uint8_t buf[512], data[32] = {0};
        struct kos_error detail;
        const uint8_t *entries[] = {data};
        size_t len = add_list(buf, 0, sha256_type, 1, entries, 32);
        CHECK(check(buf, len - 1, &detail) == KOS_DBX_MALFORMED);     /* truncated */
        put32(buf + 16, 0xffffffff);
        CHECK(check(buf, len, &detail) == KOS_DBX_MALFORMED);         /* SignatureListSize past the end */
        len = add_list(buf, 0, sha256_type, 1, entries, 32);
        put32(buf + 24, 16 + 31);
        CHECK(check(buf, len, &detail) == KOS_DBX_MALFORMED);         /* a SHA-256 entry of 31 bytes */
        len = add_list(buf, 0, sha256_type, 1, entries, 32);
        put32(buf + 20, 4);
        CHECK(check(buf, len, &detail) == KOS_DBX_MALFORMED);         /* a SignatureHeader */
        len = add_list(buf, 0, sha256_type, 0, entries, 32);
        CHECK(check(buf, len, &detail) == KOS_DBX_MALFORMED);         /* a list of no entry */
        CHECK(check(buf, 0, &detail) == KOS_DBX_MALFORMED);           /* nothing */
        CHECK(check(buf, 27, &detail) == KOS_DBX_MALFORMED);          /* half a header */
        CHECK(detail.code == -EBADMSG);
}

/* EFI_VARIABLE_AUTHENTICATION_2: EFI_TIME, WIN_CERTIFICATE_UEFI_GUID of its
 * dwLength (revision 0x0200, type 0x0EF1, EFI_CERT_TYPE_PKCS7_GUID), lists. */
static size_t auth_header(uint8_t *buf, uint32_t cert_len) {
        memset(buf, 0, 16 + cert_len);
        put32(buf + 16, cert_len);
        buf[20] = 0x00, buf[21] = 0x02, buf[22] = 0xf1, buf[23] = 0x0e;
        memcpy(buf + 24, pkcs7_type, 16);
        return 16 + cert_len;
}

TEST(dbx_update_auth_header_is_skipped_by_its_length_and_checked) {
        uint8_t buf[1024], mine[32];
        struct kos_error detail;
        struct kos_uki_identity id;
        identity(&id);
        memset(mine, 0x11, 32);
        const uint8_t *entries[] = {mine};
        size_t len = add_list(buf, auth_header(buf, 24 + 100), sha256_type, 1, entries, 32);
        CHECK(kos_dbx_check_update(buf, len, &id, 1, &detail) == KOS_DBX_REVOKES_UKI_HASH);
        buf[22] = 0x02; /* WIN_CERT_TYPE_PKCS_SIGNED_DATA: not an authenticated variable */
        CHECK(kos_dbx_check_update(buf, len, &id, 1, &detail) == KOS_DBX_MALFORMED);
        auth_header(buf, 24 + 100);
        put32(buf + 16, (uint32_t)len); /* dwLength past the end */
        CHECK(kos_dbx_check_update(buf, len, &id, 1, &detail) == KOS_DBX_MALFORMED);
        put32(buf + 16, 24 + 100);
        buf[24] ^= 1; /* another CertType */
        CHECK(kos_dbx_check_update(buf, len, &id, 1, &detail) == KOS_DBX_MALFORMED);
}

TEST(dbx_verdict_strings_are_stable) {
        CHECK(strcmp(kos_dbx_verdict_to_string(KOS_DBX_REVOKES_UKI_HASH), "revokes-uki-hash") == 0);
        CHECK(strcmp(kos_dbx_verdict_to_string(KOS_DBX_REVOKES_UKI_SIGNER), "revokes-uki-signer") == 0);
        for (int v = 0; v < _KOS_DBX_VERDICT_MAX; v++)
                CHECK(kos_dbx_verdict_to_string((enum kos_dbx_verdict)v) != NULL);
}

TEST(authenticode_hash_refuses_a_malformed_pe_image) {
        uint8_t pe[512] = {'M', 'Z'}, digest[KOS_SHA256_LEN];
        CHECK(kos_authenticode_sha256(pe, sizeof pe, digest) == -EBADMSG);  /* no PE signature */
        put32(pe + 0x3c, 0x80);
        memcpy(pe + 0x80, "PE\0\0", 4);
        pe[0x80 + 6] = 1;                                                  /* one section */
        pe[0x80 + 20] = 0xf0;                                              /* SizeOfOptionalHeader 240 */
        pe[0x98] = 0x0b, pe[0x99] = 0x02;                                  /* PE32+ */
        put32(pe + 0x98 + 108, 16);                                        /* 16 directories */
        put32(pe + 0x98 + 60, 0x1b0);                                      /* SizeOfHeaders */
        CHECK(kos_authenticode_sha256(pe, sizeof pe, digest) == 0);
        put32(pe + 0x98 + 112 + 4 * 8, 0x100);                             /* a certificate table ... */
        put32(pe + 0x98 + 112 + 4 * 8 + 4, 0x1000);                        /* ... past the end */
        CHECK(kos_authenticode_sha256(pe, sizeof pe, digest) == -EBADMSG);
        put32(pe + 0x98 + 112 + 4 * 8 + 4, 0);
        put32(pe + 0x188 + 16, 0x100), put32(pe + 0x188 + 20, 0x180);      /* a section past the end */
        CHECK(kos_authenticode_sha256(pe, sizeof pe, digest) == -EBADMSG);
        put32(pe + 0x98 + 60, 0x1000);                                     /* SizeOfHeaders past the end */
        CHECK(kos_authenticode_sha256(pe, sizeof pe, digest) == -EBADMSG);
        put32(pe + 0x3c, 0xfffffff0);                                      /* e_lfanew past the end */
        CHECK(kos_authenticode_sha256(pe, sizeof pe, digest) == -EBADMSG);
}

/* Before it writes, the device asks whether dbx holds the update already
 * (kos_dbx_apply_update(): then nothing is written). */
TEST(dbx_holds_an_update_only_when_it_holds_every_entry_whatever_the_owner) {
        static const uint8_t h1[32] = {1}, h2[32] = {2}, h3[32] = {3}, h4[32] = {4}, h5[32] = {5};
        uint8_t dbx[512], update[256];
        size_t dbx_len = add_list(dbx, 0, sha256_type, 3, (const uint8_t *const[]){h1, h2, h3}, 32);
        dbx_len = add_list(dbx, dbx_len, sha256_type, 1, (const uint8_t *const[]){h4}, 32);
        size_t len = add_list(update, 0, sha256_type, 2, (const uint8_t *const[]){h4, h2}, 32);
        update[28] = 0x22; /* another owner: the same entry for the firmware */
        CHECK(kos_dbx_lists_contain(dbx, dbx_len, update, len));
        len = add_list(update, 0, sha256_type, 2, (const uint8_t *const[]){h2, h5}, 32);
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, 0, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len, update, 0));
        /* The same bytes as another type are another entry. */
        len = add_list(update, 0, x509_type, 1, (const uint8_t *const[]){h1}, 32);
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len, update, len));
        /* A truncated dbx or update is never "already applied". */
        len = add_list(update, 0, sha256_type, 1, (const uint8_t *const[]){h1}, 32);
        CHECK(kos_dbx_lists_contain(dbx, dbx_len, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len - 1, update, len));
        CHECK(!kos_dbx_lists_contain(dbx, dbx_len, update, len - 1));
}
