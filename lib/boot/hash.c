/* SPDX-License-Identifier: MIT */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "verity.h"

#define HASH_BUFFER_SIZE (1u << 20) /* large sequential reads, small fixed memory */
#define HASH_MAX_THREADS 8

struct hash_run {
        struct kos_hash_job *jobs;
        size_t n_jobs;
        atomic_size_t next_job;
        atomic_size_t first_failure; /* index of the earliest failed job, or n_jobs */
        atomic_uint_fast64_t done_bytes;
        pthread_mutex_t lock;
        pthread_cond_t finished;
        size_t running_workers;
};

static bool job_is_cancelled(struct hash_run *run, size_t index) {
        return atomic_load(&run->first_failure) < index;
}

static void record_failure(struct hash_run *run, size_t index) {
        size_t seen = atomic_load(&run->first_failure);
        while (index < seen && !atomic_compare_exchange_weak(&run->first_failure, &seen, index))
                ;
}

static enum kos_hash_status read_and_hash(struct hash_run *run, size_t index, EVP_MD_CTX *ctx, uint8_t *buffer) {
        struct kos_hash_job *job = &run->jobs[index];
        uint64_t remaining = job->size;
        unsigned int digest_len = 0;
        int r;

        (void)posix_fadvise(job->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return job->error = -EIO, KOS_HASH_IO_ERROR;

        for (uint64_t offset = 0; remaining > 0;) {
                if (job_is_cancelled(run, index))
                        return KOS_HASH_CANCELLED;
                size_t want = remaining < HASH_BUFFER_SIZE ? (size_t)remaining : HASH_BUFFER_SIZE;
                ssize_t n = pread(job->fd, buffer, want, (off_t)offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return job->error = -errno, KOS_HASH_IO_ERROR;
                if (n == 0)
                        return KOS_HASH_SIZE_CHANGED;
                /* The same buffer is hashed and copied: what the caller later
                 * uses through copy_fd is exactly what was verified. */
                if (EVP_DigestUpdate(ctx, buffer, (size_t)n) != 1)
                        return job->error = -EIO, KOS_HASH_IO_ERROR;
                if (job->copy_fd >= 0 && (r = kos_write_all(job->copy_fd, buffer, (size_t)n)) < 0)
                        return job->error = r, KOS_HASH_IO_ERROR;
                offset += (uint64_t)n;
                remaining -= (uint64_t)n;
                atomic_fetch_add(&run->done_bytes, (uint64_t)n);
                job->read_bytes += (uint64_t)n;
        }

        uint8_t extra;
        ssize_t n = pread(job->fd, &extra, 1, (off_t)job->size);
        if (n != 0)
                return n < 0 ? (job->error = -errno, KOS_HASH_IO_ERROR) : KOS_HASH_SIZE_CHANGED;

        if (EVP_DigestFinal_ex(ctx, job->digest, &digest_len) != 1 || digest_len != KOS_SHA256_LEN)
                return job->error = -EIO, KOS_HASH_IO_ERROR;
        return job->compute_only || kos_digest_equal(job->digest, job->expected) ? KOS_HASH_MATCH : KOS_HASH_MISMATCH;
}

static enum kos_hash_status verify_tree(struct hash_run *run, struct kos_hash_job *job) {
        struct kos_error error;
        enum kos_verity_tree_result r = kos_verity_tree_verify(job->fd, job->hash_offset, job->expected,
                                                               &job->read_bytes, &error);

        job->error = r == KOS_VERITY_TREE_IO_ERROR ? error.code : 0;
        snprintf(job->detail, sizeof job->detail, "%.*s", (int)sizeof job->detail - 1, error.msg); /* cut as before */
        atomic_fetch_add(&run->done_bytes, job->read_bytes);
        switch (r) {
        case KOS_VERITY_TREE_MATCH:
                return KOS_HASH_MATCH;
        case KOS_VERITY_TREE_MISMATCH:
                return KOS_HASH_TREE_MISMATCH;
        case KOS_VERITY_TREE_SHORT_READ:
                return KOS_HASH_SIZE_CHANGED;
        case KOS_VERITY_TREE_IO_ERROR:
                return KOS_HASH_IO_ERROR;
        }
        return KOS_HASH_IO_ERROR;
}

static void *hash_worker(void *userdata) {
        struct hash_run *run = userdata;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t *buffer = malloc(HASH_BUFFER_SIZE);

        for (;;) {
                size_t index = atomic_fetch_add(&run->next_job, 1);
                if (index >= run->n_jobs)
                        break;
                struct kos_hash_job *job = &run->jobs[index];
                if (!ctx || !buffer) {
                        job->error = -ENOMEM;
                        job->status = KOS_HASH_IO_ERROR;
                } else if (job_is_cancelled(run, index))
                        job->status = KOS_HASH_CANCELLED;
                else if (job->hash_tree)
                        job->status = verify_tree(run, job);
                else
                        job->status = read_and_hash(run, index, ctx, buffer);
                if (job->status != KOS_HASH_MATCH && job->status != KOS_HASH_CANCELLED)
                        record_failure(run, index);
        }

        free(buffer);
        EVP_MD_CTX_free(ctx);
        pthread_mutex_lock(&run->lock);
        run->running_workers--;
        pthread_cond_signal(&run->finished);
        pthread_mutex_unlock(&run->lock);
        return NULL;
}

static size_t worker_count(size_t n_jobs) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        size_t n = cpus > 0 ? (size_t)cpus : 1;

        if (n > HASH_MAX_THREADS)
                n = HASH_MAX_THREADS;
        return n < n_jobs ? n : n_jobs;
}

/* Waits for the workers, reporting progress from this thread so that the
 * callback never has to be thread-safe. */
static void wait_for_workers(struct hash_run *run, uint64_t total, kos_progress_fn progress, void *userdata) {
        pthread_mutex_lock(&run->lock);
        while (run->running_workers > 0) {
                struct timespec deadline;
                clock_gettime(CLOCK_REALTIME, &deadline);
                deadline.tv_nsec += 250 * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
                if (pthread_cond_timedwait(&run->finished, &run->lock, &deadline) == ETIMEDOUT && progress) {
                        pthread_mutex_unlock(&run->lock);
                        progress(atomic_load(&run->done_bytes), total, userdata);
                        pthread_mutex_lock(&run->lock);
                }
        }
        pthread_mutex_unlock(&run->lock);
}

int kos_hash_jobs(struct kos_hash_job *jobs, size_t n_jobs, kos_progress_fn progress, void *userdata) {
        pthread_t threads[HASH_MAX_THREADS];
        struct hash_run run = {
                .jobs = jobs,
                .n_jobs = n_jobs,
                .first_failure = n_jobs,
                .lock = PTHREAD_MUTEX_INITIALIZER,
                .finished = PTHREAD_COND_INITIALIZER,
        };
        uint64_t total = 0;
        size_t started = 0;
        int r = 0;

        for (size_t i = 0; i < n_jobs; i++) {
                jobs[i].status = KOS_HASH_PENDING;
                jobs[i].error = 0;
                jobs[i].read_bytes = 0;
                jobs[i].detail[0] = '\0';
                /* A tree is about 1/127 of the data it covers. */
                total += jobs[i].hash_tree && jobs[i].hash_offset <= jobs[i].size ? jobs[i].size - jobs[i].hash_offset
                                                                                   : jobs[i].size;
        }

        size_t wanted = worker_count(n_jobs);
        for (; started < wanted; started++) {
                pthread_mutex_lock(&run.lock);
                run.running_workers++;
                pthread_mutex_unlock(&run.lock);
                r = -pthread_create(&threads[started], NULL, hash_worker, &run);
                if (r < 0) {
                        pthread_mutex_lock(&run.lock);
                        run.running_workers--;
                        pthread_mutex_unlock(&run.lock);
                        break;
                }
        }
        if (started == 0 && n_jobs > 0)
                return r;
        /* If fewer workers started than wanted, those that did still drain the queue. */
        wait_for_workers(&run, total, progress, userdata);
        for (size_t i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        if (progress && total > 0)
                progress(atomic_load(&run.done_bytes), total, userdata);
        return 0;
}
