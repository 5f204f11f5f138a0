"""The center core's services: tenancy, access, jobs, files, and the center itself."""
