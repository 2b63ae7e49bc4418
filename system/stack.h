/* SPDX-License-Identifier: MIT */
/* Block-device plumbing of the System Kernel: read-only loop devices, and
 * dm-crypt / dm-verity mappings through libcryptsetup. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"

/* Attaches file_fd to a free loop device, read-only (LOOP_CONFIGURE); the
 * device detaches by itself once unmounted and closed (LO_FLAGS_AUTOCLEAR).
 * Returns an fd of the loop device; ret_path gets /dev/loopN. */
int stack_attach_loop(int file_fd, char ret_path[static 32]);

/* Opens the LUKS2 container on device as /dev/mapper/<name>, read-only. */
int stack_open_luks2(const char *device, const char *name, const uint8_t *key, size_t key_len,
                     struct kos_error *ret_error);

/* Opens dm-verity over device (data, then the superblock at hash_offset,
 * then the tree) with the signed root hash, as /dev/mapper/<name>. A block
 * that does not match the tree fails to read (EIO); it is never returned.
 * With restart_on_corruption (a "verify": "hash-tree" component, whose data
 * the Boot Kernel did not read), such a block restarts the machine instead,
 * so the Boot Kernel checks again (docs/format.md, "Boot counting").
 * Every parameter comes from the signed manifest (docs/system-kernel.md,
 * "dm-verity parameters"): the superblock is read once, checked with
 * kos_verity_read_superblock() (lib/boot/verity.h: the check selection
 * and kos manifest create make too), and only its salt is used. */
int stack_open_verity(const char *device, const char *name, uint64_t hash_offset, const uint8_t root_hash[static 32],
                      bool restart_on_corruption, struct kos_error *ret_error);
