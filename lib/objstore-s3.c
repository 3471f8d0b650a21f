/* placeholder: being written */
typedef int hf_placeholder_objstore_s3_c;
