/* SPDX-License-Identifier: MIT */
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "signature.h"
#include "util.h"

static int reject(struct kos_loaded_manifest *m, enum kos_reason reason, int r, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
static int reject(struct kos_loaded_manifest *m, enum kos_reason reason, int r, const char *format, ...) {
        va_list ap;

        m->reason = reason;
        va_start(ap, format);
        r = kos_error_setv(&m->error, r, format, ap);
        va_end(ap);
        return r;
}

static int check_signature(const struct kos_keyring *ring, const char *untrusted_json, size_t json_len,
                           const char *untrusted_sig, size_t sig_len, const char *label, struct kos_loaded_manifest *m) {
        struct kos_signature_file sigs;
        uint8_t key_id[KOS_KEY_ID_LEN];
        char key_hex[KOS_KEY_ID_HEX_LEN + 1];
        struct kos_error error = KOS_ERROR_NULL;

        if (kos_signature_file_parse(untrusted_sig, sig_len, &sigs, &error) < 0)
                return reject(m, KOS_REASON_SIGNATURE_MALFORMED, -EBADMSG, "%s.sig: %s", label, error.msg);
        if (!ring)
                return 0; /* kos_manifest_load_unverified_at(): well formed is all */
        enum kos_signature_verdict v = kos_signature_file_verify(&sigs, ring, untrusted_json, json_len, key_id);
        kos_hex_encode(key_id, KOS_KEY_ID_LEN, key_hex);
        switch (v) {
        case KOS_SIGNATURE_VALID:
                memcpy(m->signer, key_id, KOS_KEY_ID_LEN);
                m->authenticated = true;
                return 0;
        case KOS_SIGNATURE_KEY_UNTRUSTED:
                return reject(m, KOS_REASON_KEY_UNTRUSTED, -EBADMSG, "%s: signed only by key%s %s%s, not in the keyring",
                              label, sigs.n > 1 ? "s" : "", key_hex, sigs.n > 1 ? " and others" : "");
        case KOS_SIGNATURE_INVALID:
                return reject(m, KOS_REASON_SIGNATURE_INVALID, -EBADMSG,
                              "%s: the signature by trusted key %s does not verify over the manifest's bytes", label, key_hex);
        }
        return reject(m, KOS_REASON_SIGNATURE_INVALID, -EBADMSG, "%s: unknown signature verdict", label);
}

/* ring NULL only for kos_manifest_load_unverified_at(). */
static int load(const struct kos_keyring *ring, const char *untrusted_json, size_t json_len, const char *untrusted_sig,
                size_t sig_len, const char *label, struct kos_loaded_manifest *m) {
        struct kos_error error = KOS_ERROR_NULL;
        int r;

        if (json_len > KOS_MANIFEST_MAX)
                return reject(m, KOS_REASON_MANIFEST_TOO_LARGE, -EBADMSG, "%s is larger than %d bytes", label,
                              KOS_MANIFEST_MAX);
        if ((r = kos_sha256(untrusted_json, json_len, m->id)) < 0)
                return reject(m, KOS_REASON_IO_ERROR, r, "%s: cannot hash: %s", label, strerror(-r));
        m->has_id = true;
        /* Authenticate, then parse: no JSON is looked at before the signature
         * over these exact bytes has verified. */
        if ((r = check_signature(ring, untrusted_json, json_len, untrusted_sig, sig_len, label, m)) < 0)
                return r;
        if ((r = kos_manifest_parse(untrusted_json, json_len, &m->manifest, &error)) < 0)
                return reject(m, r == -ENOMEM ? KOS_REASON_IO_ERROR : KOS_REASON_MANIFEST_MALFORMED, r, "%s: %s", label,
                              r == -ENOMEM ? "out of memory" : error.msg);
        return 0;
}

int kos_manifest_load_verified(const struct kos_keyring *ring, const char *untrusted_json, size_t json_len,
                               const char *untrusted_sig, size_t sig_len, const char *label,
                               struct kos_loaded_manifest *ret) {
        *ret = (struct kos_loaded_manifest){.reason = KOS_REASON_NONE};
        if (!ring)
                return reject(ret, KOS_REASON_KEY_UNTRUSTED, -EINVAL, "%s: no keyring to verify against", label);
        return load(ring, untrusted_json, json_len, untrusted_sig, sig_len, label, ret);
}

static int read_files_at(int dirfd, const char *json_path, const char *sig_path, const char *label_dir,
                         struct kos_loaded_manifest *m) {
        int r = kos_read_file_at(dirfd, json_path, KOS_MANIFEST_MAX, &m->json, &m->json_len);

        if (r == -ENOENT)
                return reject(m, KOS_REASON_MANIFEST_MISSING, r, "%s%s does not exist", label_dir, json_path);
        if (r == -ELOOP || r == -EBADFD)
                return reject(m, KOS_REASON_MANIFEST_MISSING, r, "%s%s is not a regular file", label_dir, json_path);
        if (r == -EFBIG)
                return reject(m, KOS_REASON_MANIFEST_TOO_LARGE, r, "%s%s is larger than %d bytes", label_dir, json_path,
                              KOS_MANIFEST_MAX);
        if (r < 0)
                return reject(m, KOS_REASON_IO_ERROR, r, "cannot read %s%s: %s", label_dir, json_path, strerror(-r));
        r = kos_read_file_at(dirfd, sig_path, KOS_SIGNATURE_FILE_MAX, &m->sig, &m->sig_len);
        if (r == -ENOENT)
                return reject(m, KOS_REASON_SIGNATURE_MISSING, r, "%s%s does not exist", label_dir, sig_path);
        if (r == -EFBIG || r == -ELOOP || r == -EBADFD)
                return reject(m, KOS_REASON_SIGNATURE_MALFORMED, r, "%s%s is %s", label_dir, sig_path,
                              r == -EFBIG ? "larger than 8192 bytes" : "not a regular file");
        if (r < 0)
                return reject(m, KOS_REASON_IO_ERROR, r, "cannot read %s%s: %s", label_dir, sig_path, strerror(-r));
        return 0;
}

static int load_at(const struct kos_keyring *ring, int dirfd, const char *json_path, const char *sig_path,
                   const char *label_dir, struct kos_loaded_manifest *ret) {
        char label[512];
        int r;

        *ret = (struct kos_loaded_manifest){.reason = KOS_REASON_NONE};
        snprintf(label, sizeof label, "%s%s", label_dir, json_path);
        if ((r = read_files_at(dirfd, json_path, sig_path, label_dir, ret)) < 0) {
                /* The id names the bytes even when the signature is missing. */
                if (ret->json && kos_sha256(ret->json, ret->json_len, ret->id) == 0)
                        ret->has_id = true;
                return r;
        }
        return load(ring, ret->json, ret->json_len, ret->sig, ret->sig_len, label, ret);
}

int kos_manifest_load_verified_at(const struct kos_keyring *ring, int dirfd, const char *json_path, const char *sig_path,
                                  const char *label_dir, struct kos_loaded_manifest *ret) {
        if (!ring) {
                *ret = (struct kos_loaded_manifest){.reason = KOS_REASON_NONE};
                return reject(ret, KOS_REASON_KEY_UNTRUSTED, -EINVAL, "%s%s: no keyring to verify against", label_dir,
                              json_path);
        }
        return load_at(ring, dirfd, json_path, sig_path, label_dir, ret);
}

int kos_manifest_load_unverified_at(int dirfd, const char *json_path, const char *sig_path, const char *label_dir,
                                    struct kos_loaded_manifest *ret) {
        return load_at(NULL, dirfd, json_path, sig_path, label_dir, ret);
}

void kos_loaded_manifest_done(struct kos_loaded_manifest *m) {
        kos_manifest_free(m->manifest);
        free(m->json);
        free(m->sig);
        m->manifest = NULL;
        m->json = m->sig = NULL;
}
