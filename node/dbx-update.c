/* SPDX-License-Identifier: MIT */
/* A release's dbx update (docs/trust-chain.md, "dbx updates"; the
 * manifest's "dbx_update"), applied once the release's boot is marked good,
 * after the Boot Kernel slots (boot-slots.c, which calls this with the ESP
 * and efivarfs open): the .auth from the ImageFS, checked against its
 * signed sha256, then kos_dbx_apply_update() against the UKIs the device
 * needs to boot: the default slot, the slot this boot came from, and the
 * removable path (what a firmware that lost its variables starts). The
 * other slot (an old UKI kept after a blessing, a bad trial) is not needed:
 * revoking it is what a dbx update is for. The outcome goes to the events
 * and to `kos node status` (boot_kernel.dbx_update). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk-slots.h"
#include "dbx.h"
#include "early.h"
#include "node.h"

#define REMOVABLE_PATH "EFI/BOOT/BOOTX64.EFI"
#define NEEDED_MAX (KOS_BK_SLOTS + 1)

/* The hash and signers of the UKI at path in the ESP (mapped, not copied). */
static int uki_identity_at(int esp_fd, const char *path, struct kos_uki_identity *ret) {
        struct stat st;
        _cleanup_close_ int fd = kos_open_regular_at(esp_fd, path, O_NOFOLLOW, &st);

        if (fd < 0)
                return fd;
        if (st.st_size <= 0 || (uint64_t)st.st_size > KOS_BK_UKI_MAX)
                return -EFBIG;
        void *pe = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (pe == MAP_FAILED)
                return -errno;
        int r = kos_uki_identity_of(pe, (size_t)st.st_size, ret);
        munmap(pe, (size_t)st.st_size);
        return r;
}

/* The UKIs the device needs; *ret_n 0 when none could be read. */
static void load_needed(int esp_fd, const struct kos_bk_slots *s, struct kos_uki_identity *ids, size_t *ret_n,
                        char *names, size_t names_size) {
        char path[64];
        size_t n = 0, len = 0;

        names[0] = '\0';
        for (unsigned i = 0; i < KOS_BK_SLOTS + 1; i++) {
                bool slot = i < KOS_BK_SLOTS;
                if (slot && (!s->slot[i].present || ((int)i != s->good && (int)i != s->booted)))
                        continue;
                if (slot)
                        snprintf(path, sizeof path, "EFI/KOS/%s", kos_bk_slot_file(i));
                else
                        snprintf(path, sizeof path, "%s", REMOVABLE_PATH);
                int r = uki_identity_at(esp_fd, path, &ids[n]);
                if (r < 0) {
                        event("dbx update: cannot read the needed UKI %s: %s", path, strerror(-r));
                        continue;
                }
                int w = snprintf(names + len, names_size - len, "%s%s", len ? ", " : "", path);
                if (w > 0 && (size_t)w < names_size - len)
                        len += (size_t)w;
                n++;
        }
        *ret_n = n;
}

/* The .auth from components/, exactly the signed bytes. */
static int read_update(struct node *n, const struct kos_dbx_update *u, uint8_t **ret) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        uint8_t digest[KOS_SHA256_LEN];

        kos_hex_encode(u->blob.sha256, KOS_SHA256_LEN, hex);
        _cleanup_close_ int fd = kos_open_regular_at(n->img.components_fd, hex, O_NOFOLLOW, NULL);
        if (fd < 0)
                return fd;
        _cleanup_free_ uint8_t *buf = malloc(u->blob.size + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t got = read(fd, buf, u->blob.size + 1);
        if (got < 0)
                return -errno;
        if ((uint64_t)got != u->blob.size || kos_sha256(buf, (size_t)got, digest) < 0 ||
            !kos_digest_equal(digest, u->blob.sha256))
                return -EBADMSG;
        *ret = TAKE_PTR(buf);
        return 0;
}

static void remember(struct node *n, const char *hex, const char *result, const char *reason) {
        if (!n->boot_kernel)
                return;
        json_object_set_new(n->boot_kernel, "dbx_update",
                            json_pack("{s:s, s:s, s:s}", "sha256", hex, "result", result, "reason", reason));
}

void dbx_update_apply(struct node *n, int esp_fd, int efivars_fd, const struct kos_bk_slots *s,
                      const struct kos_dbx_update *u) {
        struct kos_uki_identity ids[NEEDED_MAX];
        enum kos_dbx_apply_result result = KOS_DBX_APPLY_REFUSED;
        enum kos_dbx_verdict verdict = KOS_DBX_MALFORMED;
        _cleanup_free_ uint8_t *auth = NULL;
        char hex[KOS_SHA256_HEX_LEN + 1], names[256], reason[1024];
        struct kos_error detail;
        size_t n_needed = 0;
        int r;

        kos_hex_encode(u->blob.sha256, KOS_SHA256_LEN, hex);
        if ((r = read_update(n, u, &auth)) < 0) {
                snprintf(reason, sizeof reason, "components/%.16s...: %s", hex,
                         r == -EBADMSG ? "not the signed bytes" : strerror(-r));
                event("dbx update %.16s not applied: %s", hex, reason);
                remember(n, hex, "error", reason);
                return;
        }
        load_needed(esp_fd, s, ids, &n_needed, names, sizeof names);
        if (n_needed == 0) {
                event("dbx update %.16s not applied: no UKI the device needs could be read to check it against", hex);
                remember(n, hex, "error", "no needed UKI could be read");
                return;
        }
        r = kos_dbx_apply_update(efivars_fd, auth, u->blob.size, ids, n_needed, &result, &verdict, &detail);
        for (size_t i = 0; i < n_needed; i++)
                kos_uki_identity_done(&ids[i]);
        if (r < 0) {
                snprintf(reason, sizeof reason, "the write to efivarfs failed: %s", strerror(-r));
                event("dbx update %.16s not applied: %s", hex, reason);
                remember(n, hex, "error", reason);
        } else if (result == KOS_DBX_APPLY_REFUSED) {
                /* detail.msg numbers the UKIs in the order of names. */
                snprintf(reason, sizeof reason, "%s: %s (needed: %s)", kos_dbx_verdict_to_string(verdict), detail.msg, names);
                event("dbx update %.16s refused: %s", hex, reason);
                remember(n, hex, "refused", reason);
        } else if (result == KOS_DBX_APPLY_PRESENT) {
                remember(n, hex, "present", detail.msg);
        } else {
                event("dbx update %.16s appended to dbx (checked against %s)", hex, names);
                remember(n, hex, "appended", detail.msg);
        }
}
