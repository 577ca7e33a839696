/* choreograph--0.3--0.4.sql: privilege isolation between roles */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION choreograph UPDATE TO '0.4'" to load this file. \quit
