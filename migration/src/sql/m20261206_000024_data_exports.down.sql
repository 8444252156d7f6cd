DROP TABLE public.data_export_chunks;
DROP TABLE public.data_exports;
