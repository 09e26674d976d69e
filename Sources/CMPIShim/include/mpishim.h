// A minimal, run-time-loaded binding to Open MPI: fergc builds without mpi.h or libmpi and
// loads libmpi.so.40 with dlopen only when a distributed run asks for it. Every function
// returns 0 on success, an MPI error code, or FM_NOT_LOADED.
#ifndef FERGC_MPISHIM_H
#define FERGC_MPISHIM_H

#ifdef __cplusplus
extern "C" {
#endif

#define FM_NOT_LOADED (-1)

/// Loads libmpi: `path` if non-NULL, else libmpi.so.40 then libmpi.so. On failure returns
/// non-zero and writes why (dlopen's or dlsym's message) into `why`.
int fm_mpi_load(const char *path, char *why, int whyLength);
/// MPI_Init_thread (funneled: only the calling thread calls MPI) on a duplicate of
/// MPI_COMM_WORLD whose errors return instead of aborting.
int fm_mpi_init(int *rank, int *size);
int fm_mpi_finalize(void);
/// MPI_Abort on MPI_COMM_WORLD: ends every rank of the job.
void fm_mpi_abort(int code);
/// In-place MPI_Iallreduce with MPI_SUM; *request receives the request handle.
int fm_mpi_iallreduce_sum_float(float *values, int count, void **request);
int fm_mpi_iallreduce_sum_double(double *values, int count, void **request);
/// MPI_Test: *done is 1 when the request completed (the handle is then released).
int fm_mpi_test(void **request, int *done);
/// MPI_Error_string into buffer (NUL-terminated).
void fm_mpi_error_string(int code, char *buffer, int length);
/// The library's version string (MPI_Get_library_version), NUL-terminated.
void fm_mpi_library_version(char *buffer, int length);

#ifdef __cplusplus
}
#endif
#endif
