/* SPDX-License-Identifier: MIT */
#include "dbx.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bk-slots.h"

#define EFI_TIME_SIZE 16
#define WIN_CERT_HEADER_SIZE 8      /* dwLength, wRevision, wCertificateType */
#define WIN_CERT_UEFI_GUID_SIZE 24  /* the header, then CertType */
#define WIN_CERT_TYPE_PKCS_SIGNED_DATA 0x0002
#define WIN_CERT_TYPE_EFI_GUID 0x0EF1
#define ESL_HEADER_SIZE 28 /* SignatureType, SignatureListSize, SignatureHeaderSize, SignatureSize */
#define GUID_SIZE 16
#define PE_DIRECTORY_SECURITY 4

/* EFI_CERT_SHA256_GUID c1c41626-504c-4092-aca9-41f936934328, EFI_CERT_X509_GUID
 * a5c059a1-94e4-4aa7-87b5-ab155c2bf072, EFI_CERT_TYPE_PKCS7_GUID
 * 4aafd29d-68df-49ee-8aa9-347d375665a7, in their byte order on disk. */
static const uint8_t cert_sha256_guid[GUID_SIZE] = {0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40,
                                                    0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28};
static const uint8_t cert_x509_guid[GUID_SIZE] = {0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a,
                                                  0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72};
static const uint8_t cert_type_pkcs7_guid[GUID_SIZE] = {0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49,
                                                        0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7};

static uint16_t le16(const uint8_t *p) {
        return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* [offset, offset + size) lies within len. */
static bool within(size_t len, uint64_t offset, uint64_t size) {
        return offset <= len && size <= len - offset;
}

/* The parts of a PE image the Authenticode hash and the signature need. */
struct pe_layout {
        uint32_t size_of_headers;
        size_t checksum_offset;
        size_t security_dir_offset; /* 0 when the image has no such directory entry */
        uint32_t cert_table_offset, cert_table_size;
        size_t sections_offset;
        uint16_t n_sections;
};

static int pe_layout_read(const uint8_t *pe, size_t len, struct pe_layout *ret) {
        memset(ret, 0, sizeof *ret);
        if (len > KOS_UKI_MAX || !within(len, 0, 0x40) || pe[0] != 'M' || pe[1] != 'Z')
                return -EBADMSG;
        uint32_t nt = le32(pe + 0x3c);
        if (!within(len, nt, 24) || memcmp(pe + nt, "PE\0\0", 4) != 0)
                return -EBADMSG;
        ret->n_sections = le16(pe + nt + 6);
        uint16_t opt_size = le16(pe + nt + 20);
        size_t opt = (size_t)nt + 24;
        if (!within(len, opt, opt_size) || opt_size < 2)
                return -EBADMSG;
        uint16_t magic = le16(pe + opt);
        size_t n_dirs_at = magic == 0x20b ? 108 : magic == 0x10b ? 92 : 0;
        if (n_dirs_at == 0 || opt_size < n_dirs_at + 4)
                return -EBADMSG;
        ret->size_of_headers = le32(pe + opt + 60);
        ret->checksum_offset = opt + 64;
        uint32_t n_dirs = le32(pe + opt + n_dirs_at);
        size_t dirs = opt + n_dirs_at + 4;
        if (n_dirs > 16 || opt_size < n_dirs_at + 4 + (size_t)n_dirs * 8)
                return -EBADMSG;
        if (n_dirs > PE_DIRECTORY_SECURITY) {
                ret->security_dir_offset = dirs + PE_DIRECTORY_SECURITY * 8;
                ret->cert_table_offset = le32(pe + ret->security_dir_offset);
                ret->cert_table_size = le32(pe + ret->security_dir_offset + 4);
                if (ret->cert_table_size && !within(len, ret->cert_table_offset, ret->cert_table_size))
                        return -EBADMSG;
        }
        ret->sections_offset = opt + opt_size;
        if (!within(len, ret->sections_offset, (uint64_t)ret->n_sections * 40) ||
            ret->size_of_headers < ret->sections_offset + (size_t)ret->n_sections * 40 || ret->size_of_headers > len ||
            ret->checksum_offset + 4 > ret->size_of_headers ||
            (ret->security_dir_offset && ret->security_dir_offset + 8 > ret->size_of_headers))
                return -EBADMSG;
        return 0;
}

struct section_range {
        uint32_t offset, size;
};

static int compare_sections(const void *a, const void *b) {
        const struct section_range *x = a, *y = b;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int hash_update(EVP_MD_CTX *ctx, const uint8_t *pe, size_t from, size_t to) {
        return to < from || EVP_DigestUpdate(ctx, pe + from, to - from) != 1 ? -EBADMSG : 0;
}

static int hash_pe(EVP_MD_CTX *ctx, const uint8_t *pe, size_t len, const struct pe_layout *l) {
        struct section_range ranges[96];
        uint64_t hashed = l->size_of_headers;
        size_t n = 0;
        int r;

        if (l->n_sections > ELEMENTSOF(ranges))
                return -EBADMSG;
        /* Headers, without CheckSum and without the certificate-table entry. */
        if ((r = hash_update(ctx, pe, 0, l->checksum_offset)) < 0)
                return r;
        if (l->security_dir_offset) {
                if ((r = hash_update(ctx, pe, l->checksum_offset + 4, l->security_dir_offset)) < 0 ||
                    (r = hash_update(ctx, pe, l->security_dir_offset + 8, l->size_of_headers)) < 0)
                        return r;
        } else if ((r = hash_update(ctx, pe, l->checksum_offset + 4, l->size_of_headers)) < 0)
                return r;
        for (size_t i = 0; i < l->n_sections; i++) {
                const uint8_t *s = pe + l->sections_offset + i * 40;
                struct section_range sr = {.size = le32(s + 16), .offset = le32(s + 20)};
                if (sr.size == 0)
                        continue;
                if (!within(len, sr.offset, sr.size))
                        return -EBADMSG;
                ranges[n++] = sr;
        }
        qsort(ranges, n, sizeof ranges[0], compare_sections);
        for (size_t i = 0; i < n; i++) {
                if ((r = hash_update(ctx, pe, ranges[i].offset, (size_t)ranges[i].offset + ranges[i].size)) < 0)
                        return r;
                hashed += ranges[i].size;
        }
        /* What follows, save the certificate table (EDK2: image size minus
         * the certificate directory's size minus what was hashed). */
        if (len > hashed && len - hashed > l->cert_table_size &&
            (r = hash_update(ctx, pe, (size_t)hashed, len - l->cert_table_size)) < 0)
                return r;
        return 0;
}

int kos_authenticode_sha256(const uint8_t *untrusted_pe, size_t len, uint8_t ret[static KOS_SHA256_LEN]) {
        struct pe_layout l;
        unsigned out_len = 0;
        int r = pe_layout_read(untrusted_pe, len, &l);

        if (r < 0)
                return r;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                r = -EIO;
        if (r >= 0)
                r = hash_pe(ctx, untrusted_pe, len, &l);
        if (r >= 0 && (EVP_DigestFinal_ex(ctx, ret, &out_len) != 1 || out_len != KOS_SHA256_LEN))
                r = -EIO;
        EVP_MD_CTX_free(ctx);
        return r;
}

/* Appends the DER of every certificate of one PKCS#7 SignedData. */
static int add_certs_of(const uint8_t *der, size_t len, struct kos_uki_identity *id) {
        const unsigned char *p = der;
        PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
        int r = 0;

        if (!p7 || !PKCS7_type_is_signed(p7) || !p7->d.sign) {
                PKCS7_free(p7);
                return -EBADMSG;
        }
        STACK_OF(X509) *certs = p7->d.sign->cert;
        for (int i = 0; r >= 0 && i < sk_X509_num(certs); i++) {
                unsigned char *out = NULL;
                int n = i2d_X509(sk_X509_value(certs, i), &out);
                if (n <= 0)
                        r = -EBADMSG;
                else if (id->n_certs >= KOS_UKI_MAX_CERTS) {
                        OPENSSL_free(out);
                        r = -E2BIG;
                } else {
                        id->certs[id->n_certs] = malloc((size_t)n);
                        if (id->certs[id->n_certs])
                                memcpy(id->certs[id->n_certs], out, (size_t)n);
                        else
                                r = -ENOMEM;
                        id->cert_lens[id->n_certs++] = (size_t)n;
                        OPENSSL_free(out);
                }
        }
        PKCS7_free(p7);
        return r;
}

/* WIN_CERTIFICATE entries, each 8-byte aligned (PE/COFF 4.7). */
static int read_cert_table(const uint8_t *pe, const struct pe_layout *l, struct kos_uki_identity *id) {
        size_t pos = l->cert_table_offset, end = (size_t)l->cert_table_offset + l->cert_table_size;
        int r;

        if (l->cert_table_size == 0)
                return -ENOKEY;
        while (end - pos >= WIN_CERT_HEADER_SIZE) {
                uint32_t length = le32(pe + pos);
                if (length < WIN_CERT_HEADER_SIZE || length > end - pos)
                        return -EBADMSG;
                if (le16(pe + pos + 6) == WIN_CERT_TYPE_PKCS_SIGNED_DATA &&
                    (r = add_certs_of(pe + pos + WIN_CERT_HEADER_SIZE, length - WIN_CERT_HEADER_SIZE, id)) < 0)
                        return r;
                size_t step = ((size_t)length + 7) & ~(size_t)7;
                if (step > end - pos)
                        break;
                pos += step;
        }
        return id->n_certs > 0 ? 0 : -ENOKEY;
}

int kos_uki_identity_of(const uint8_t *untrusted_pe, size_t len, struct kos_uki_identity *ret) {
        struct pe_layout l;
        int r;

        memset(ret, 0, sizeof *ret);
        if ((r = kos_authenticode_sha256(untrusted_pe, len, ret->authenticode_sha256)) < 0 ||
            (r = pe_layout_read(untrusted_pe, len, &l)) < 0 || (r = read_cert_table(untrusted_pe, &l, ret)) < 0)
                kos_uki_identity_done(ret);
        return r;
}

void kos_uki_identity_done(struct kos_uki_identity *id) {
        for (size_t i = 0; i < id->n_certs; i++)
                free(id->certs[i]);
        id->n_certs = 0;
}

static const char *const verdict_names[_KOS_DBX_VERDICT_MAX] = {
        [KOS_DBX_SAFE] = "safe",
        [KOS_DBX_REVOKES_UKI_HASH] = "revokes-uki-hash",
        [KOS_DBX_REVOKES_UKI_SIGNER] = "revokes-uki-signer",
        [KOS_DBX_UNKNOWN_TYPE] = "unknown-signature-type",
        [KOS_DBX_MALFORMED] = "malformed",
};

const char *kos_dbx_verdict_to_string(enum kos_dbx_verdict v) {
        return v < _KOS_DBX_VERDICT_MAX ? verdict_names[v] : "unknown";
}

int kos_dbx_auth_payload(const uint8_t *untrusted_auth, size_t len, const uint8_t **ret_lists, size_t *ret_len) {
        if (len > KOS_DBX_UPDATE_MAX || !within(len, 0, EFI_TIME_SIZE + WIN_CERT_UEFI_GUID_SIZE))
                return -EBADMSG;
        const uint8_t *cert = untrusted_auth + EFI_TIME_SIZE;
        uint32_t length = le32(cert);
        if (le16(cert + 4) != 0x0200 || le16(cert + 6) != WIN_CERT_TYPE_EFI_GUID ||
            memcmp(cert + 8, cert_type_pkcs7_guid, GUID_SIZE) != 0 || length < WIN_CERT_UEFI_GUID_SIZE ||
            !within(len, EFI_TIME_SIZE, length))
                return -EBADMSG;
        *ret_lists = untrusted_auth + EFI_TIME_SIZE + length;
        *ret_len = len - EFI_TIME_SIZE - length;
        return 0;
}

/* A refusal: v, with why in e (-EPERM when it revokes a needed UKI,
 * -EBADMSG when the lists cannot be read). */
static enum kos_dbx_verdict verdict(enum kos_dbx_verdict v, struct kos_error *e, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static enum kos_dbx_verdict verdict(enum kos_dbx_verdict v, struct kos_error *e, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        kos_error_setv(e, v == KOS_DBX_REVOKES_UKI_HASH || v == KOS_DBX_REVOKES_UKI_SIGNER ? -EPERM : -EBADMSG, format,
                       ap);
        va_end(ap);
        return v;
}

/* SAFE: no failure (code 0), the message says what was checked. */
static enum kos_dbx_verdict safe(struct kos_error *e, const char *format, ...) __attribute__((format(printf, 2, 3)));
static enum kos_dbx_verdict safe(struct kos_error *e, const char *format, ...) {
        va_list ap;

        kos_error_clear(e);
        if (e) {
                va_start(ap, format);
                vsnprintf(e->msg, sizeof e->msg, format, ap);
                va_end(ap);
        }
        return KOS_DBX_SAFE;
}

/* One EFI_SIGNATURE_DATA (owner GUID, then data) of a list of type. */
static enum kos_dbx_verdict check_entry(bool is_sha256, const uint8_t *data, size_t data_len, size_t list, size_t entry,
                                        const struct kos_uki_identity *needed, size_t n_needed,
                                        struct kos_error *ret_error) {
        char hex[KOS_SHA256_HEX_LEN + 1];

        for (size_t u = 0; u < n_needed; u++) {
                if (is_sha256 && memcmp(data, needed[u].authenticode_sha256, KOS_SHA256_LEN) == 0) {
                        kos_hex_encode(data, KOS_SHA256_LEN, hex);
                        return verdict(KOS_DBX_REVOKES_UKI_HASH, ret_error,
                                       "list %zu entry %zu is the Authenticode hash %s of UKI %zu", list, entry, hex, u);
                }
                for (size_t c = 0; !is_sha256 && c < needed[u].n_certs; c++)
                        if (needed[u].cert_lens[c] == data_len && memcmp(needed[u].certs[c], data, data_len) == 0)
                                return verdict(KOS_DBX_REVOKES_UKI_SIGNER, ret_error,
                                               "list %zu entry %zu is certificate %zu of UKI %zu's signature", list,
                                               entry, c, u);
        }
        return KOS_DBX_SAFE;
}

static enum kos_dbx_verdict check_list(const uint8_t *esl, size_t list_size, size_t list,
                                       const struct kos_uki_identity *needed, size_t n_needed,
                                       struct kos_error *ret_error) {
        bool is_sha256 = memcmp(esl, cert_sha256_guid, GUID_SIZE) == 0;
        bool is_x509 = memcmp(esl, cert_x509_guid, GUID_SIZE) == 0;
        uint32_t header_size = le32(esl + 20), entry_size = le32(esl + 24);
        enum kos_dbx_verdict v;

        if (!is_sha256 && !is_x509)
                return verdict(KOS_DBX_UNKNOWN_TYPE, ret_error,
                               "list %zu has a signature type other than EFI_CERT_SHA256 and EFI_CERT_X509", list);
        if (header_size != 0 || entry_size <= GUID_SIZE || (is_sha256 && entry_size != GUID_SIZE + KOS_SHA256_LEN) ||
            (list_size - ESL_HEADER_SIZE) % entry_size != 0 || list_size == ESL_HEADER_SIZE)
                return verdict(KOS_DBX_MALFORMED, ret_error, "list %zu: sizes do not add up", list);
        size_t n = (list_size - ESL_HEADER_SIZE) / entry_size;
        for (size_t i = 0; i < n; i++) {
                const uint8_t *entry = esl + ESL_HEADER_SIZE + i * entry_size;
                v = check_entry(is_sha256, entry + GUID_SIZE, entry_size - GUID_SIZE, list, i, needed, n_needed, ret_error);
                if (v != KOS_DBX_SAFE)
                        return v;
        }
        return KOS_DBX_SAFE;
}

enum kos_dbx_verdict kos_dbx_check_signature_lists(const uint8_t *untrusted_lists, size_t len,
                                                   const struct kos_uki_identity *needed, size_t n_needed,
                                                   struct kos_error *ret_error) {
        size_t pos = 0, list = 0;
        enum kos_dbx_verdict v;

        if (len == 0 || len > KOS_DBX_UPDATE_MAX)
                return verdict(KOS_DBX_MALFORMED, ret_error, "no signature list, or more than %d bytes",
                               KOS_DBX_UPDATE_MAX);
        for (; pos < len; list++) {
                if (len - pos < ESL_HEADER_SIZE)
                        return verdict(KOS_DBX_MALFORMED, ret_error, "list %zu: truncated header", list);
                uint32_t list_size = le32(untrusted_lists + pos + 16);
                if (list_size < ESL_HEADER_SIZE || list_size > len - pos)
                        return verdict(KOS_DBX_MALFORMED, ret_error, "list %zu: size %u out of bounds", list,
                                       list_size);
                v = check_list(untrusted_lists + pos, list_size, list, needed, n_needed, ret_error);
                if (v != KOS_DBX_SAFE)
                        return v;
                pos += list_size;
        }
        return safe(ret_error, "%zu list%s, nothing a needed UKI is matched by", list, list == 1 ? "" : "s");
}

enum kos_dbx_verdict kos_dbx_check_update(const uint8_t *untrusted_auth, size_t len,
                                          const struct kos_uki_identity *needed, size_t n_needed,
                                          struct kos_error *ret_error) {
        const uint8_t *lists;
        size_t lists_len;

        if (kos_dbx_auth_payload(untrusted_auth, len, &lists, &lists_len) < 0)
                return verdict(KOS_DBX_MALFORMED, ret_error,
                               "not an EFI_VARIABLE_AUTHENTICATION_2 header with a PKCS#7 certificate");
        return kos_dbx_check_signature_lists(lists, lists_len, needed, n_needed, ret_error);
}

/* --- Applying an update ------------------------------------------------- */

/* One list of a well-formed sequence: its type, entries and their size.
 * false at the end or on a malformed list (*malformed then). */
struct esl_walk {
        const uint8_t *lists;
        size_t len, pos;
        bool malformed;
        const uint8_t *type, *entries;
        size_t entry_size, n_entries;
};

static bool esl_walk_next(struct esl_walk *w) {
        if (w->pos == w->len)
                return false;
        if (w->len - w->pos < ESL_HEADER_SIZE)
                return !(w->malformed = true);
        const uint8_t *esl = w->lists + w->pos;
        uint32_t list_size = le32(esl + 16), header_size = le32(esl + 20), entry_size = le32(esl + 24);
        if (list_size > w->len - w->pos || header_size > list_size - ESL_HEADER_SIZE || entry_size <= GUID_SIZE ||
            list_size < ESL_HEADER_SIZE || (list_size - ESL_HEADER_SIZE - header_size) % entry_size != 0)
                return !(w->malformed = true);
        w->type = esl;
        w->entries = esl + ESL_HEADER_SIZE + header_size;
        w->entry_size = entry_size;
        w->n_entries = (list_size - ESL_HEADER_SIZE - header_size) / entry_size;
        w->pos += list_size;
        return true;
}

/* Whether dbx holds an entry of this type with this data (any owner). */
static bool dbx_has(const uint8_t *dbx, size_t dbx_len, const uint8_t *type, const uint8_t *data, size_t data_len) {
        struct esl_walk w = {.lists = dbx, .len = dbx_len};

        while (esl_walk_next(&w)) {
                if (memcmp(w.type, type, GUID_SIZE) != 0 || w.entry_size - GUID_SIZE != data_len)
                        continue;
                for (size_t i = 0; i < w.n_entries; i++)
                        if (memcmp(w.entries + i * w.entry_size + GUID_SIZE, data, data_len) == 0)
                                return true;
        }
        return false;
}

bool kos_dbx_lists_contain(const uint8_t *untrusted_dbx, size_t dbx_len, const uint8_t *untrusted_lists,
                           size_t lists_len) {
        struct esl_walk check = {.lists = untrusted_dbx, .len = dbx_len};
        struct esl_walk w = {.lists = untrusted_lists, .len = lists_len};
        size_t n = 0;

        while (esl_walk_next(&check))
                ;
        if (check.malformed || lists_len == 0)
                return false;
        while (esl_walk_next(&w))
                for (size_t i = 0; i < w.n_entries; i++, n++)
                        if (!dbx_has(untrusted_dbx, dbx_len, w.type, w.entries + i * w.entry_size + GUID_SIZE,
                                     w.entry_size - GUID_SIZE))
                                return false;
        return !w.malformed && n > 0;
}

static const char *const apply_result_names[_KOS_DBX_APPLY_RESULT_MAX] = {
        [KOS_DBX_APPLY_APPENDED] = "appended",
        [KOS_DBX_APPLY_PRESENT] = "present",
        [KOS_DBX_APPLY_REFUSED] = "refused",
};

const char *kos_dbx_apply_result_to_string(enum kos_dbx_apply_result r) {
        return r < _KOS_DBX_APPLY_RESULT_MAX ? apply_result_names[r] : "unknown";
}

/* dbx's data (after the 4 bytes of attributes); *ret_len 0 when there is
 * no dbx yet. efivarfs hands the whole variable to one read(). */
static int dbx_read(int efivars_fd, uint8_t **ret, size_t *ret_len) {
        _cleanup_close_ int fd = openat(efivars_fd, KOS_DBX_EFIVAR, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;

        *ret = NULL;
        *ret_len = 0;
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (!(buf = malloc(4 + KOS_DBX_VARIABLE_MAX + 1)))
                return -ENOMEM;
        ssize_t n = read(fd, buf, 4 + KOS_DBX_VARIABLE_MAX + 1);
        if (n < 0)
                return -errno;
        if (n > 4 + KOS_DBX_VARIABLE_MAX)
                return -EFBIG;
        if (n > 0 && n < 4)
                return -EBADMSG;
        *ret_len = n > 0 ? (size_t)n - 4 : 0;
        if (*ret_len > 0)
                memmove(buf, buf + 4, *ret_len);
        *ret = TAKE_PTR(buf);
        return 0;
}

/* efivarfs makes every variable it does not know as safe to delete
 * immutable (fs/efivarfs/inode.c), dbx among them: FS_IMMUTABLE_FL is
 * cleared for the write, as chattr -i would, and *ret_was says whether to
 * set it again. A file system without the flags (a test directory on
 * tmpfs) has nothing to clear. */
static int clear_immutable(int fd, bool *ret_was) {
        int flags = 0;

        *ret_was = false;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                return errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL ? 0 : -errno;
        if (!(flags & FS_IMMUTABLE_FL))
                return 0;
        flags &= ~FS_IMMUTABLE_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                return -errno;
        *ret_was = true;
        return 0;
}

static void set_immutable(int fd) {
        int flags = 0;

        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
                flags |= FS_IMMUTABLE_FL;
                (void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
        }
}

/* One write() of the attributes and the .auth: efivarfs passes it to
 * SetVariable() as it is. */
static int dbx_append(int efivars_fd, const uint8_t *auth, size_t len) {
        _cleanup_close_ int ro = openat(efivars_fd, KOS_DBX_EFIVAR, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        bool was_immutable = false;
        int r = 0;

        if (ro < 0 && errno != ENOENT)
                return -errno;
        if (ro >= 0 && (r = clear_immutable(ro, &was_immutable)) < 0)
                return r;
        /* With APPEND_WRITE the firmware appends to dbx. */
        r = kos_efivar_write_file(efivars_fd, KOS_DBX_EFIVAR, KOS_DBX_APPEND_ATTRIBUTES, auth, len);
        if (was_immutable)
                set_immutable(ro);
        return r;
}

int kos_dbx_apply_update(int efivars_fd, const uint8_t *untrusted_auth, size_t len, const struct kos_uki_identity *needed,
                         size_t n_needed, enum kos_dbx_apply_result *ret_result, enum kos_dbx_verdict *ret_verdict,
                         struct kos_error *ret_error) {
        _cleanup_free_ uint8_t *dbx = NULL;
        const uint8_t *lists;
        size_t lists_len, dbx_len;
        int r;

        if (n_needed == 0)
                return -EINVAL;
        /* Already in dbx: nothing to write, whatever it revokes (the
         * firmware refuses those UKIs already). */
        if (kos_dbx_auth_payload(untrusted_auth, len, &lists, &lists_len) == 0) {
                if ((r = dbx_read(efivars_fd, &dbx, &dbx_len)) < 0)
                        return r;
                if (dbx_len > 0 && kos_dbx_lists_contain(dbx, dbx_len, lists, lists_len)) {
                        *ret_verdict = safe(ret_error, "dbx holds every entry already");
                        *ret_result = KOS_DBX_APPLY_PRESENT;
                        return 0;
                }
        }
        *ret_verdict = kos_dbx_check_update(untrusted_auth, len, needed, n_needed, ret_error);
        if (*ret_verdict != KOS_DBX_SAFE) {
                *ret_result = KOS_DBX_APPLY_REFUSED;
                return 0;
        }
        if ((r = dbx_append(efivars_fd, untrusted_auth, len)) < 0)
                return r;
        *ret_result = KOS_DBX_APPLY_APPENDED;
        return 0;
}
