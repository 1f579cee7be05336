//! A stand-in for a Mesos agent's v1 executor API.
