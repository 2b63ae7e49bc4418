/* SPDX-License-Identifier: MIT */
/* Reproducible initramfs images: a gzip-compressed (or plain) cpio (newc) archive whose
 * entries are sorted by path, with mtime 0, owner root and inode numbers
 * assigned in order, so the same inputs always give the same bytes. Also the
 * module dependency closure read from a kernel's modules.dep. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

struct initramfs;

struct initramfs *initramfs_new(void);
void initramfs_free(struct initramfs *ir);
int initramfs_add_dir(struct initramfs *ir, const char *path);
/* Adds a regular file copied from source (read when written), with mode. */
int initramfs_add_file(struct initramfs *ir, const char *path, const char *source, mode_t mode);
int initramfs_add_data(struct initramfs *ir, const char *path, const void *data, size_t len, mode_t mode);
/* Adds every *.pem of dir under path. */
int initramfs_add_pem_dir(struct initramfs *ir, const char *path, const char *dir);
/* Adds every regular file of dir (not recursive) under path with mode. */
int initramfs_add_dir_files(struct initramfs *ir, const char *path, const char *dir, mode_t mode);
/* Adds a dynamically linked program at path and every shared library it
 * needs (as ldd resolves them on this host) at the path the loader looks. */
int initramfs_add_program(struct initramfs *ir, const char *path, const char *source);
/* Writes the archive, gzip-compressed, atomically to output. */
int initramfs_write(struct initramfs *ir, const char *output, size_t *ret_size);
/* The same archive without compression (for a compressor run afterwards). */
int initramfs_write_uncompressed(struct initramfs *ir, const char *output, size_t *ret_size);

/* Resolves the modules named in names (module names as modprobe takes them)
 * and all their dependencies from <modules_dir>/modules.dep, in an order
 * where each module comes after what it needs. ret_list gets a malloc'd list,
 * one line per module: "path: dep dep", paths relative to modules_dir, the
 * deps being what modules.dep lists and the earlier modules modules.softdep
 * asks for (crc32c_generic before ext4): what the init must wait for before
 * loading that module, so it can load the others in parallel. */
int modules_resolve(const char *modules_dir, const char *const *names, size_t n_names, char **ret_list,
                    size_t *ret_count);
