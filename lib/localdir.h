/* hyperfile: local directories the operator names (cache=, wal=).
 *
 * Such a directory may sit somewhere others can reach (a shared /var,
 * a world-writable scratch space).  A server running as root that
 * followed a symlink planted there, or trusted a directory another user
 * can write into, could be made to truncate or overwrite any file.  So
 * the directory is opened once, without following a symlink at its last
 * component, checked, and every file in it is opened relative to that
 * descriptor with O_NOFOLLOW (hf_localdir_openat).
 *
 * Thread safety: no shared state.
 */
#ifndef HF_LOCALDIR_H
#define HF_LOCALDIR_H

/* Open the directory path (made 0700 if missing; its parent must
 * exist) for param ("cache", "wal": named in log lines).  Refused:
 * a symbolic link (ELOOP), not a directory (ENOTDIR), owned by another
 * uid than the effective one or writable by its group or by others
 * (EPERM); each with one log line saying why and, for the mode, what
 * it is.  On success *dirfd is an O_DIRECTORY | O_CLOEXEC descriptor
 * the caller closes. */
extern int hf_localdir_open (const char *param, const char *path,
                             int *dirfd);

/* openat (dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600), and for a
 * file that is not created here (no O_EXCL): refuse anything but a
 * regular file with one link (a planted hard link to another file must
 * not be written through).  Returns the descriptor, or -1 with errno
 * set (ELOOP for a symlink, EPERM for the rest); logs nothing. */
extern int hf_localdir_openat (int dirfd, const char *name, int flags);

/* strerror, but saying what ELOOP and EPERM from hf_localdir_openat
 * mean. */
extern const char *hf_localdir_strerror (int err);

#endif /* HF_LOCALDIR_H */
