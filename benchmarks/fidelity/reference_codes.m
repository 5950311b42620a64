function reference_codes(input_file, output_file)
% REFERENCE_CODES  Codes of one hasher computed by its authors' public MATLAB code (GNU Octave).
%
%   reference_codes(INPUT_FILE, OUTPUT_FILE) is called by run_fidelity.py, one Octave process per
%   hasher and seed. INPUT_FILE is a MAT file with:
%     method        hasher name ('lsh', 'pcah', 'itq', 'sh', 'agh', 'sdh', 'ksh', 'sph', 'isohash', 'dsh')
%     n_bits, seed  code length and the seed of Octave's rand/randn
%     train         training texts (n x d, sparse), train_labels (n x c, {0,1})
%     encode        the rows to encode (query rows, then database rows; sparse)
%     distinct_anchors  KSH only: 1 samples the anchors among distinct training rows
%     root_<key>    where each reference repository was checked out (see run_fidelity.py)
%   OUTPUT_FILE receives codes (rows of ENCODE x n_bits, uint8 {0,1}).
%
%   This file is glue written for ddcmh: it prepares inputs the way each reference's demo does
%   (centring where the reference's benchmark centres, anchors, kernel width) and then calls the
%   reference's own functions. Only the directories a method needs are put on the path, because the
%   repositories ship functions with the same name and different conventions (sqdist).
  pkg load statistics
  in = load(input_file);
  rand('state', double(in.seed));
  randn('state', double(in.seed));
  train = full(in.train);
  rows = full(in.encode);
  r = double(in.n_bits);
  mu = mean(train, 1);
  switch in.method
    case {'lsh', 'itq', 'sh', 'isohash', 'sph', 'dsh'}
      codes = zju_codes(in, train, rows, mu, r);
    case 'pcah'
      addpath(fullfile(in.root_willard_yuan, 'Method-PCAH'), fullfile(in.root_willard_yuan, 'utils'));
      param.nbits = r;
      param = trainPCAH(bsxfun(@minus, train, mu), param);
      [~, codes] = compressPCAH(bsxfun(@minus, rows, mu), param);
    case 'agh'
      addpath(fullfile(in.root_zju, 'Clustering'));
      [~, anchor] = litekmeans(train, 300, 'MaxIter', 5, 'Replicates', 1);
      addpath(in.root_agh);
      [~, W, sigma] = OneLayerAGH_Train(train, anchor, r, 2, 0);
      codes = OneLayerAGH_Test(rows, anchor, W, 2, sigma);
    case 'sdh'
      codes = sdh_codes(in, train, rows, r);
    case 'ksh'
      codes = ksh_codes(in, train, rows, r);
    otherwise
      error('reference_codes: no reference driver for method %s', in.method);
  end
  codes = uint8(codes ~= 0);
  save('-v7', output_file, 'codes');
end

function codes = zju_codes(in, train, rows, mu, r)
  % ZJULearning/MatlabFunc's uniform wrappers: [model, B] = NAME_learn(A, bits); B = NAME_compress(A, model).
  % They do not centre; like willard-yuan's construct_data.m, centre the methods that assume it.
  hashing = fullfile(in.root_zju, 'ANNS', 'Hashing', 'Unsupervised');
  addpath(hashing, fullfile(hashing, 'ITQ'), fullfile(hashing, 'SH'), fullfile(hashing, 'SpH'));
  addpath(fullfile(in.root_zju, 'Clustering'), fullfile(in.root_zju, 'Tools'));
  names = struct('lsh', 'LSH', 'itq', 'ITQ', 'sh', 'SH', 'isohash', 'IsoH', 'sph', 'SpH', 'dsh', 'DSH');
  name = names.(in.method);
  if any(strcmp(in.method, {'lsh', 'itq', 'sh', 'isohash'}))
    train = bsxfun(@minus, train, mu);
    rows = bsxfun(@minus, rows, mu);
  end
  model = feval([name '_learn'], train, r);
  codes = feval([name '_compress'], rows, model);
end

function codes = sdh_codes(in, train, rows, r)
  % demo_SDH.m: L2-normalised rows (normalize.m), 1000 random anchors, RBF features with a bias
  % column, B0 = sign(randn), SDH(Phi, Y, B0, gmap, Fmap, [], 5). The width is ddcmh's default
  % (sigma^2 = mean squared training-to-anchor distance) instead of the demo's 0.4 for dense images.
  addpath(in.root_sdh);
  train = normalize(train);
  rows = normalize(rows);
  n = size(train, 1);
  anchor = train(randsample(n, min(1000, n)), :);
  dist = sqdist(train, anchor);
  sigma = sqrt(mean(dist(:)));
  phi = [exp(-dist / (2 * sigma * sigma)), ones(n, 1)];
  gmap.lambda = 1; gmap.loss = 'L2';
  Fmap.type = 'RBF'; Fmap.nu = 1e-5; Fmap.lambda = 1e-2;
  zinit = sign(randn(n, r));
  [~, F, ~] = SDH(phi, double(in.train_labels), zinit, gmap, Fmap, [], 5, 0);
  phi_rows = [exp(-sqdist(rows, anchor) / (2 * sigma * sigma)), ones(size(rows, 1), 1)];
  codes = phi_rows * F.W > 0;
end

function codes = ksh_codes(in, traindata, rows, r)
  % KSH_demo.m's own kernel and projection-optimisation blocks, evaluated from the file. The demo
  % loads fixed index files and single-label data; here the anchors and the 2,000 labelled rows
  % are sampled with the seed, and S = +1 for pairs that share a label (multi-label), else -1.
  addpath(in.root_ksh);
  demo = fileread(fullfile(in.root_ksh, 'KSH_demo.m'));
  n = size(traindata, 1);
  m = 300;
  trn = 2000;
  if in.distinct_anchors
    [~, first] = unique(traindata, 'rows', 'first');
    sample = first(randperm(numel(first), m))';
  else
    sample = randperm(n, m);
  end
  label_index = randperm(n, trn);
  evalc(demo_block(demo, '% kernel computing', '% pairwise label matrix'));
  labels = double(in.train_labels(label_index, :));
  S = r * (2 * double(labels * labels' > 0) - 1);
  evalc(demo_block(demo, '% projection optimization', '% encoding'));
  % The demo's test block: centred RBF features of new rows, bit = A1' k > 0.
  KTest = exp(-sqdist(rows', anchor') / (2 * sigma));
  KTest = bsxfun(@minus, KTest, mvec);
  codes = (A1' * KTest')' > 0;
end

function block = demo_block(demo, first_marker, end_marker)
  % The text of the demo between two comment lines (the first after first_marker).
  start = strfind(demo, first_marker);
  stop = strfind(demo, end_marker);
  stop = stop(find(stop > start(1), 1));
  block = demo(start(1):stop - 1);
end
