/* SPDX-License-Identifier: MIT */
/* kos select: the same decision the Boot Kernel makes, on a host. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "kos.h"
#include "select.h"

/* How each component was checked ("sha256" or "hash-tree", in manifest
 * order; empty when selection stopped before the components). */
static json_t *checks_to_json(const struct kos_candidate *c) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < c->n_checks; i++)
                json_array_append_new(a, json_string(kos_verify_to_string(c->checks[i])));
        return a;
}

static json_t *candidate_to_json(const struct kos_candidate *c) {
        char id[KOS_SHA256_HEX_LEN + 1];

        kos_hex_encode(c->id, KOS_SHA256_LEN, id);
        json_t *o = json_pack("{s:s, s:o, s:s, s:o, s:o, s:o, s:o}", "name", c->name, "id",
                              c->has_id ? json_string(id) : json_null(), "verdict", kos_verdict_to_string(c->verdict),
                              "reason",
                              c->verdict == KOS_VERDICT_REJECTED ? json_string(kos_reason_to_string(c->reason)) : json_null(),
                              "detail", c->verdict == KOS_VERDICT_REJECTED ? json_string(c->detail) : json_null(),
                              "checks", checks_to_json(c), "full_check_why",
                              c->full_check_why[0] ? json_string(c->full_check_why) : json_null());
        return o;
}

/* The selected manifest's components, each with the check it got. */
static void print_component_checks(const struct kos_selection *s) {
        const struct kos_candidate *c = &s->candidates[s->selected];

        for (size_t i = 0; s->manifest && i < c->n_checks && i < s->manifest->n_components; i++)
                printf("      %-24s %s\n", s->manifest->components[i].name,
                       c->checks[i] == KOS_VERIFY_HASH_TREE ? "hash-tree: dm-verity tree up to the signed root hash"
                                                            : "sha256: every byte");
}

static int print_json(const struct kos_selection *s) {
        json_t *manifests = json_array(), *selected = json_null();
        char id[KOS_SHA256_HEX_LEN + 1];

        for (size_t i = 0; i < s->n_candidates; i++)
                json_array_append_new(manifests, candidate_to_json(&s->candidates[i]));
        if (s->selected >= 0) {
                const struct kos_candidate *c = &s->candidates[s->selected];
                kos_hex_encode(c->id, KOS_SHA256_LEN, id);
                selected = json_pack("{s:s, s:s}", "name", c->name, "id", id);
        }
        json_t *root = json_pack("{s:o, s:I, s:s, s:o, s:o}", "selected", selected, "floor", (json_int_t)s->floor.value,
                                 "floor_source", kos_floor_source_to_string(s->floor.source), "floor_warning",
                                 s->floor.warning[0] ? json_string(s->floor.warning) : json_null(), "manifests", manifests);
        char *text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        if (!text)
                return fail(EXIT_USAGE, "out of memory");
        printf("%s\n", text);
        free(text);
        return EXIT_OK;
}

static void print_explain(const struct kos_selection *s, const char *dir) {
        char id[KOS_SHA256_HEX_LEN + 1], signer[KOS_KEY_ID_HEX_LEN + 1];

        printf("rollback floor: security_version %lu (%s)\n", (unsigned long)s->floor.value,
               kos_floor_source_to_string(s->floor.source));
        if (s->floor.warning[0])
                printf("WARNING: %s\n", s->floor.warning);
        if (s->active_error < 0)
                printf("%s/active cannot be read (%s): no manifest is active\n", dir, file_error_string(s->active_error));
        else if (s->n_candidates == 0)
                printf("%s/active lists no manifest\n", dir);
        for (size_t i = 0; i < s->n_candidates; i++) {
                const struct kos_candidate *c = &s->candidates[i];
                kos_hex_encode(c->id, KOS_SHA256_LEN, id);
                printf("%2zu. %-24s ", i + 1, c->name);
                switch (c->verdict) {
                case KOS_VERDICT_VALID:
                        kos_hex_encode(c->signer, KOS_KEY_ID_LEN, signer);
                        printf("valid     signed by %s, %llu MiB verified in %.3f s", signer,
                               (unsigned long long)(c->hashed_bytes >> 20), (double)c->elapsed_ns / 1e9);
                        if (c->on_trial)
                                printf("; on trial, %u tries left", c->tries_left);
                        printf("\n");
                        if (c->full_check_why[0])
                                printf("    hash-tree components checked with full sha256: %s\n", c->full_check_why);
                        if ((int)i == s->selected)
                                print_component_checks(s);
                        break;
                case KOS_VERDICT_REJECTED:
                        printf("rejected  %s: %s\n", kos_reason_to_string(c->reason), c->detail);
                        if (c->full_check_why[0])
                                printf("    hash-tree components checked with full sha256: %s\n", c->full_check_why);
                        break;
                case KOS_VERDICT_SKIPPED:
                        printf("skipped   (after the selected one)\n");
                        break;
                }
        }
        if (s->n_ignored)
                printf("%zu entries after the first %d of active were ignored\n", s->n_ignored, KOS_ACTIVE_MAX);
}

int cmd_select(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'},
                                                {"explain", no_argument, NULL, 'e'},
                                                {"json", no_argument, NULL, 'j'},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_keyring ring;
        struct kos_selection s;
        struct progress p;
        const char *keyring = NULL;
        bool explain = false, json = false;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "k:ejh", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos select IMAGEFS --keyring DIR [--explain] [--json]\n\n"
                               "Walks IMAGEFS/active in order and selects the first manifest that is\n"
                               "signed by a key of the keyring and whose kernel, initrd and components\n"
                               "are all present with their declared size and sha256 - the Boot Kernel's\n"
                               "decision. A component marked \"verify\": \"hash-tree\" is checked by its\n"
                               "dm-verity tree up to the signed root hash, or by every byte when its\n"
                               "manifest's last boot was never confirmed. A manifest whose\n"
                               "security_version is below the device's rollback floor\n"
                               "(IMAGEFS/boot-state/rollback-floor, and the TPM's counter when there is a\n"
                               "TPM: one that is there but cannot be trusted selects nothing) is rejected.\n"
                               "Prints the selected name and id; --explain gives the floor and the\n"
                               "verdict and reason of every manifest and the check each component of\n"
                               "the selected one got; --json one object for programs.\n"
                               "Exit 0 when a manifest is selected, 1 when none is valid.\n");
                        return EXIT_OK;
                case 'k':
                        keyring = optarg;
                        break;
                case 'e':
                        explain = true;
                        break;
                case 'j':
                        json = true;
                        break;
                default:
                        return usage_error("select", "unknown option");
                }
        }
        if (!keyring || argc - optind != 1)
                return usage_error("select", "expected IMAGEFS and --keyring DIR");
        if ((code = load_keyring_or_fail(keyring, &ring)) != EXIT_OK ||
            (code = open_imagefs_or_fail(argv[optind], &img)) != EXIT_OK)
                return code;

        progress_init(&p, "verifying");
        struct kos_select_options opts = {.progress = progress_print, .userdata = &p};
        r = kos_select(&img, &ring, &opts, &s);
        progress_finish(&p);
        kos_imagefs_close(&img);
        if (r == -ENOTRECOVERABLE) /* a TPM whose floor cannot be trusted: nothing may boot */
                return fail(EXIT_INVALID, "rollback floor: %s", s.floor.tpm);
        if (r < 0)
                return fail(EXIT_USAGE, "selection failed: %s", strerror(-r));
        if (s.floor.warning[0] && !explain && !json)
                fprintf(stderr, "kos: WARNING: %s\n", s.floor.warning);

        if (json)
                code = print_json(&s);
        else if (explain)
                print_explain(&s, argv[optind]);
        if (s.selected >= 0 && !json) {
                char id[KOS_SHA256_HEX_LEN + 1];
                kos_hex_encode(s.candidates[s.selected].id, KOS_SHA256_LEN, id);
                printf("%sselected %s %s\n", explain ? "\n" : "", s.candidates[s.selected].name, id);
        } else if (s.selected < 0 && !json && s.active_error < 0 && s.active_error != -ENOENT)
                fprintf(stderr, "kos: %s/active cannot be read (%s): no manifest is active\n", argv[optind],
                        file_error_string(s.active_error));
        else if (s.selected < 0 && !json)
                fprintf(stderr, "kos: no valid manifest in %s/active%s\n", argv[optind], explain ? "" : " (use --explain for the reasons)");
        if (code == EXIT_OK && s.selected < 0)
                code = EXIT_INVALID;
        kos_selection_done(&s);
        return code;
}
