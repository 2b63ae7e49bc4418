/* SPDX-License-Identifier: MIT */
#include "load.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "verify.h"

#define reject kos_candidate_reject

struct id_search {
        const uint8_t *id;
        char *ret_name;
};

static int match_id(const struct kos_imagefs *img, const char *name, void *userdata) {
        struct id_search *search = userdata;
        uint8_t have[KOS_SHA256_LEN];

        if (kos_imagefs_manifest_id(img, name, have) < 0 || !kos_digest_equal(have, search->id))
                return 0;
        snprintf(search->ret_name, KOS_NAME_MAX + 1, "%s", name);
        return 1; /* found: stops the walk */
}

int kos_imagefs_find_manifest_by_id(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN],
                                    char ret_name[static KOS_NAME_MAX + 1]) {
        struct id_search search = {.id = id, .ret_name = ret_name};
        struct kos_active_list active;

        /* active first: where the manifest a device runs almost always is. */
        if (kos_active_read(img, &active) >= 0)
                for (size_t i = 0; i < active.n; i++)
                        if (active.entries[i].name_valid && match_id(img, active.entries[i].name, &search) > 0)
                                return 0;
        int r = kos_imagefs_for_each_manifest(img, match_id, &search);
        return r < 0 ? r : r > 0 ? 0 : -ENOENT;
}

const char *kos_verdict_to_string(enum kos_verdict v) {
        switch (v) {
        case KOS_VERDICT_VALID:
                return "valid";
        case KOS_VERDICT_REJECTED:
                return "rejected";
        case KOS_VERDICT_SKIPPED:
                return "skipped";
        }
        return "unknown";
}

bool kos_candidate_reject(struct kos_candidate *c, enum kos_reason reason, const char *format, ...) {
        va_list ap;

        c->verdict = KOS_VERDICT_REJECTED;
        c->reason = reason;
        va_start(ap, format);
        vsnprintf(c->detail, sizeof c->detail, format, ap);
        va_end(ap);
        return false;
}

bool kos_load_manifest(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *name,
                       struct kos_candidate *c, struct kos_manifest **ret_manifest) {
        char json_name[KOS_NAME_MAX + 8], sig_name[KOS_NAME_MAX + 12];
        struct kos_loaded_manifest loaded;

        if (!kos_name_is_valid(name))
                return reject(c, KOS_REASON_MANIFEST_MISSING, "\"%s\" in active is not a valid manifest name", name);
        kos_manifest_file_names(name, json_name, sig_name);
        int r = kos_manifest_load_verified_at(ring, img->manifests_fd, json_name, sig_name, "manifests/", &loaded);
        c->has_id = loaded.has_id;
        memcpy(c->id, loaded.id, KOS_SHA256_LEN);
        if (r < 0) {
                reject(c, loaded.reason, "%s", loaded.error.msg);
                kos_loaded_manifest_done(&loaded);
                return false;
        }
        memcpy(c->signer, loaded.signer, KOS_KEY_ID_LEN);
        struct kos_manifest *m = TAKE_PTR(loaded.manifest);
        kos_loaded_manifest_done(&loaded);
        if (strcmp(m->name, name) != 0) {
                reject(c, KOS_REASON_NAME_MISMATCH, "manifests/%s declares the name \"%s\"", json_name, m->name);
                kos_manifest_free(m);
                return false;
        }
        *ret_manifest = m;
        return true;
}

bool kos_load_manifest_by_id(const struct kos_imagefs *img, const struct kos_keyring *ring,
                             const uint8_t id[static KOS_SHA256_LEN], struct kos_candidate *c,
                             struct kos_manifest **ret_manifest) {
        char hex[KOS_SHA256_HEX_LEN + 1], name[KOS_NAME_MAX + 1];
        struct kos_manifest *m = NULL;

        kos_hex_encode(id, KOS_SHA256_LEN, hex);
        int r = kos_imagefs_find_manifest_by_id(img, id, name);
        if (r == -ENOENT)
                return reject(c, KOS_REASON_MANIFEST_MISSING, "no installed manifest has id %s", hex);
        if (r < 0)
                return reject(c, KOS_REASON_IO_ERROR, "cannot look for manifest %s: %s", hex, strerror(-r));
        snprintf(c->name, sizeof c->name, "%s", name);
        if (!kos_load_manifest(img, ring, name, c, &m))
                return false;
        if (!kos_digest_equal(c->id, id)) {
                kos_manifest_free(m);
                return reject(c, KOS_REASON_MANIFEST_MISSING, "manifests/%s.json changed while it was read", name);
        }
        *ret_manifest = m;
        return true;
}

bool kos_check_rollback(const struct kos_manifest *m, uint32_t floor, struct kos_candidate *c) {
        if (m->security_version >= floor)
                return true;
        return reject(c, KOS_REASON_ROLLBACK, "security_version %lu is below this device's floor %lu",
                      (unsigned long)m->security_version, (unsigned long)floor);
}
