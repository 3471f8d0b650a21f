/* placeholder: being written */
typedef int hf_placeholder_segment_c;
