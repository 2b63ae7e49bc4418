/* SPDX-License-Identifier: MIT */
/* Marking the boot good (the trial ends, the rollback floor rises, older
 * manifests leave active) and confirming it (the Boot Kernel's unconfirmed
 * marker goes), with hash-tree components only after the scrub read every
 * block of them through dm-verity. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bootstate.h"
#include "early.h"
#include "mark-good.h"
#include "node.h"
#include "scrub-child.h"
#include "select.h"

static const char *const scrub_state_names[] = {"pending", "running", "done", "failed"};

const char *scrub_state_name(enum scrub_state s) {
        return s < ELEMENTSOF(scrub_state_names) ? scrub_state_names[s] : "unknown";
}

static int mark_good_now(struct node *n);

/* The rollback floor as Status shows it (the TPM is asked here, not on
 * every Status call, so a slow TPM never holds up the API). */
void refresh_floor(struct node *n) {
        n->have_floor = n->have_imagefs && n->have_keyring && kos_rollback_floor_read(&n->img, &n->ring, &n->floor) >= 0;
}

/* The boot came up, every hash-tree block was read and the boot is marked
 * good: the Boot Kernel's unconfirmed marker goes (every boot, on trial or
 * not), so the next boot may check "hash-tree" components by their tree
 * again. Left in place, it only costs the next boot a full sha256 of them. */
static void confirm_boot(struct node *n) {
        int r = kos_boot_state_confirm(&n->img, n->id);
        if (r < 0)
                event("cannot confirm the boot of manifest %s (boot-state/<id>.unconfirmed stays; the next boot "
                      "checks its hash-tree components in full): %s", n->name, strerror(-r));
        else if (n->boot.n_hash_tree > 0)
                event("boot of manifest %s confirmed: boot-state/<id>.unconfirmed removed", n->name);
}

static void on_scrub_progress(const struct kos_scrub_report *report, void *userdata) {
        struct node *n = userdata;
        uint64_t now = kos_now_ns();

        n->scrub.report = *report;
        if (now - n->scrub.last_log_ns < SCRUB_LOG_INTERVAL_NS)
                return;
        n->scrub.last_log_ns = now;
        early_log("scrub of the hash-tree components: %llu of %llu bytes", (unsigned long long)report->bytes,
                  (unsigned long long)report->total);
}

/* A corrupt block never gets here: dm-verity restarted the device when the
 * scrub read it, with the marker still on the ImageFS and the boot not yet
 * marked good. Only now is it marked good (tries, floor, active) and then
 * confirmed. */
static void on_scrub_done(int r, const struct kos_scrub_report *report, void *userdata) {
        struct node *n = userdata;

        n->scrub.report = *report;
        if (r < 0 || !kos_scrub_may_confirm(report, n->boot.n_hash_tree)) {
                n->scrub.state = SCRUB_FAILED;
                event("scrub of the hash-tree components failed (%s): %s; the boot is not marked good and "
                      "boot-state/<id>.unconfirmed stays, so the next boot hashes them in full",
                      kos_scrub_result_to_string(report->result),
                      report->error.msg[0] ? report->error.msg : strerror(r < 0 ? -r : EIO));
                return;
        }
        n->scrub.state = SCRUB_DONE;
        event("scrub of the hash-tree components done: %llu bytes of %zu device(s) read through dm-verity without "
              "an error", (unsigned long long)report->bytes, n->boot.n_hash_tree);
        (void)mark_good_now(n);
}

/* The hash-tree components boot.json names for the scrub are exactly those
 * the booted manifest (signed, found by the id the Boot Kernel handed on)
 * marks "hash-tree", in its order: boot.json is the System Kernel's, but a
 * component missing from it would go unscrubbed. 0, or -EBADMSG with why. */
static int check_scrub_list(struct node *n, struct kos_error *ret_error) {
        _cleanup_manifest_ struct kos_manifest *m = NULL;
        struct kos_candidate c = {0};
        size_t k = 0;

        if (!n->have_imagefs || !n->have_keyring)
                return kos_error_set(ret_error, -ENXIO, "the ImageFS or the keyring is unavailable");
        if (!kos_load_manifest_by_id(&n->img, &n->ring, n->id, &c, &m))
                return kos_error_set(ret_error, -ENOENT, "the booted manifest cannot be read: %s", c.detail);
        bool same = true;
        for (size_t i = 0; i < m->n_components; i++) {
                if (m->components[i].verify != KOS_VERIFY_HASH_TREE)
                        continue;
                same = same && k < n->boot.n_hash_tree &&
                       strcmp(n->boot.hash_tree[k].component, m->components[i].name) == 0;
                k++;
        }
        if (!same || k != n->boot.n_hash_tree)
                return kos_error_set(ret_error, -EBADMSG, "%s names %zu hash-tree device(s), the signed manifest marks %zu",
                                     KOS_BOOT_INFO_FILE, n->boot.n_hash_tree, k);
        return 0;
}

/* A boot with hash-tree components is marked good only after the scrub has
 * read every one of their blocks. Marking good first would raise the
 * rollback floor and take older manifests out of active on the strength of
 * a tree check alone; a corrupt block found by the scrub afterwards would
 * then leave the next boot (which hashes in full and rejects this
 * manifest) nothing to fall back to. Returns 0 when the scrub runs. */
static int scrub_then_mark_good(struct node *n) {
        struct scrub_callbacks callbacks = {.progress = on_scrub_progress, .done = on_scrub_done, .userdata = n};

        if (n->scrub.state == SCRUB_DONE)
                return mark_good_now(n); /* MarkGood again: one scrub is enough */
        if (n->scrub.state == SCRUB_RUNNING)
                return 0; /* marked good when it is done */
        n->scrub = (struct scrub_job){.state = SCRUB_RUNNING, .last_log_ns = kos_now_ns()};
        struct kos_error why = KOS_ERROR_NULL;
        int r = check_scrub_list(n, &why);
        if (r >= 0 && (r = scrub_start(n->event, n->boot.hash_tree, n->boot.n_hash_tree, &callbacks)) < 0)
                kos_error_set(&why, r, "%s", strerror(-r));
        if (r < 0) {
                n->scrub.state = SCRUB_FAILED;
                n->scrub.report.error = why;
                kos_error_prefix(&n->scrub.report.error, "cannot start: ");
                event("scrub of the hash-tree components cannot start: %s; the boot is not marked good and "
                      "boot-state/<id>.unconfirmed stays, so the next boot hashes them in full", why.msg);
                return r;
        }
        event("scrubbing %zu hash-tree component(s) through dm-verity (idle priority) before marking the boot good",
              n->boot.n_hash_tree);
        return 0;
}

/* Marks the boot good: with hash-tree components only once the scrub read
 * them through (scrub_then_mark_good), else at once. */
int mark_good(struct node *n) {
        return n->boot.n_hash_tree > 0 ? scrub_then_mark_good(n) : mark_good_now(n);
}

/* kos_mark_good() also raises the rollback floor to this manifest's
 * security_version and takes the manifests below it out of active; then
 * the boot is confirmed. */
static int mark_good_now(struct node *n) {
        struct kos_mark_good_result result;

        int r = n->have_imagefs && n->have_keyring ? kos_mark_good(&n->img, &n->ring, n->id, &result) : -ENXIO;

        if (r == -EBADMSG)
                event("cannot mark manifest %s good: %s", n->name, result.error.msg);
        else if (r < 0)
                event("cannot mark manifest %s good: %s", n->name, strerror(-r));
        else {
                n->marked_good = true;
                refresh_floor(n);
                event("boot of manifest %s marked good", n->name);
                if (result.floor_raised)
                        event("rollback floor raised from %lu to %lu", (unsigned long)result.floor_before,
                              (unsigned long)result.security_version);
                for (size_t i = 0; i < result.n_deactivated; i++)
                        event("manifest %s taken out of active: below the rollback floor %lu", result.deactivated[i],
                              (unsigned long)result.security_version);
                for (size_t i = 0; i < result.n_uninstalled; i++)
                        event("manifest %s uninstalled: below the rollback floor %lu and not in active", result.uninstalled[i],
                              (unsigned long)result.security_version);
                confirm_boot(n);
                boot_slots_after_good(n);
        }
        return r;
}
