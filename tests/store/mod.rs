mod crash;
mod crash_views;
mod fixture;
mod runner;
mod shared_views;
